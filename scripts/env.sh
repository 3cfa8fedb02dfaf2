# Source me (bash): `source scripts/env.sh` gives a shell with the vizion3d_ros environment:
# the venv (ROS 2 kilted wheels = the underlay), the colcon install of this package (the overlay),
# `vizion3d_node` and friends on PATH, DDS kept on localhost and Ultralytics kept offline.
_v3d_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_v3d_venv=${VIZION3D_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vizion3d/venv-py311}
if [ ! -x "$_v3d_venv/bin/python" ]; then
  echo "vizion3d_ros: no environment at $_v3d_venv; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
# colcon's setup scripts are not `set -u` safe
case $- in *u*) _v3d_u=1; set +u ;; *) _v3d_u=0 ;; esac
# the ROS tools PyPI lacks (ros2 launch, ros2cli, tf2_ros, vision_msgs), when `make setup` built them:
# their env.sh activates the venv and adds the underlay
_v3d_underlay=${VIZION3D_ROS_UNDERLAY:-$(dirname "$_v3d_venv")/ros-underlay}
# shellcheck disable=SC1091
if [ -f "$_v3d_underlay/env.sh" ] && [ -f "$_v3d_underlay/.vizion3d-underlay" ]; then
  source "$_v3d_underlay/env.sh"
else
  source "$_v3d_venv/bin/activate"
fi
case ":${AMENT_PREFIX_PATH:-}:" in *":$_v3d_venv:"*) ;; *) export AMENT_PREFIX_PATH="$_v3d_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
case ":${CMAKE_PREFIX_PATH:-}:" in *":$_v3d_venv:"*) ;; *) export CMAKE_PREFIX_PATH="$_v3d_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;; esac
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
# Fast DDS profile for multi-MB messages (config/fastdds_large_data.xml: shared memory sized for clouds,
# larger UDP buffers; README "Transport"), unless the shell already names one; set it empty for none
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE+x}" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$_v3d_root/config/fastdds_large_data.xml"
elif [ -z "$FASTDDS_DEFAULT_PROFILES_FILE" ]; then
  unset FASTDDS_DEFAULT_PROFILES_FILE  # an empty path makes Fast DDS log an error in every process
fi
# Ultralytics: no network, no auto-install, config in a writable cache (see ../shared/env/NOTES.md)
export YOLO_OFFLINE=${YOLO_OFFLINE:-1}
export YOLO_AUTOINSTALL=${YOLO_AUTOINSTALL:-False}
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$HOME/.cache/vizion3d/ultralytics}
export ORT_DISABLE_TELEMETRY=1
mkdir -p "$YOLO_CONFIG_DIR"
if [ -f "$_v3d_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_v3d_root/install/setup.bash"
  export PATH="$_v3d_root/install/bin:$PATH"
fi
export VIZION3D_ROOT="$_v3d_root"
[ "$_v3d_u" = 1 ] && set -u
unset _v3d_root _v3d_venv _v3d_u _v3d_underlay
