"""Static checks of the launch file, the configs and the package metadata: parsed, never launched."""
from __future__ import annotations

import ast
import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'vizion3d.launch.py'
PARAMS = ROOT / 'config' / 'vizion3d.yaml'
RVIZ = ROOT / 'config' / 'vizion3d.rviz'
MSG_PACKAGES = {'std_msgs', 'sensor_msgs', 'geometry_msgs', 'builtin_interfaces'}


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of ``name(...)`` or ``x.name(...)`` in ``tree``."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and name in (getattr(n.func, 'id', None), getattr(n.func, 'attr', None))]


def _first_args(tree: ast.AST, name: str) -> set[str]:
    """The string literals passed as first argument to ``name(...)``."""
    return {c.args[0].value for c in _calls(tree, name)
            if c.args and isinstance(c.args[0], ast.Constant)}


def _our_node(tree: ast.AST) -> ast.Call:
    for call in _calls(tree, 'Node'):
        consts = {k.arg: k.value.value for k in call.keywords if isinstance(k.value, ast.Constant)}
        if consts.get('package') == 'vizion3d_ros' and consts.get('executable') == 'vizion3d_node':
            return call
    raise AssertionError(f"{LAUNCH.name}: no Node(package='vizion3d_ros', executable='vizion3d_node')")


def test_launch_file_starts_the_node_with_its_configs():
    tree = _launch_tree()
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    _our_node(tree)
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {'vizion3d.yaml', 'vizion3d.rviz'} <= strings


def test_launch_arguments_are_declared_and_used():
    tree = _launch_tree()
    declared = _first_args(tree, 'DeclareLaunchArgument')
    assert {'model', 'params_file', 'image', 'camera_info', 'points', 'rviz'} <= declared
    used = _first_args(tree, 'LaunchConfiguration')
    assert used <= declared, f'LaunchConfiguration of undeclared arguments: {used - declared}'


def test_launch_remaps_the_node_inputs():
    remappings = next(k.value for k in _our_node(_launch_tree()).keywords if k.arg == 'remappings')
    remapped = {pair.elts[0].value for pair in remappings.elts}
    assert {'image', 'camera_info', 'points'} <= remapped


def test_params_yaml_matches_node_settings():
    from vizion3d_ros.ros.params import NodeSettings

    params = yaml.safe_load(PARAMS.read_text())['vizion3d_node']['ros__parameters']
    defaults = dataclasses.asdict(NodeSettings())
    assert set(params) == set(defaults)
    # the types too: `imgsz: 640.0` would equal 640 but declare a double parameter
    assert {k: (v, type(v)) for k, v in params.items()} == {k: (v, type(v)) for k, v in defaults.items()}


def test_every_yaml_parameter_is_documented():
    lines = PARAMS.read_text().splitlines()
    params = yaml.safe_load(PARAMS.read_text())['vizion3d_node']['ros__parameters']
    seen = set()
    for i, line in enumerate(lines):
        m = re.match(r'\s+(\w+):', line)
        if m and m[1] in params:
            seen.add(m[1])
            assert lines[i - 1].lstrip().startswith('#'), f'{PARAMS.name}:{i + 1}: {m[1]} has no comment above'
    assert seen == set(params)


def test_rviz_config_shows_the_annotated_cloud():
    manager = yaml.safe_load(RVIZ.read_text())['Visualization Manager']
    clouds = [d for d in manager['Displays'] if d['Class'] == 'rviz_default_plugins/PointCloud2']
    assert [d['Topic']['Value'] for d in clouds] == ['/annotated_points']
    fixed_frame = manager['Global Options']['Fixed Frame']
    assert isinstance(fixed_frame, str) and fixed_frame.strip()


def test_rviz_config_shows_markers_and_the_debug_image():
    displays = yaml.safe_load(RVIZ.read_text())['Visualization Manager']['Displays']
    by_class = {d['Class']: d for d in displays}
    markers = by_class['rviz_default_plugins/MarkerArray']
    assert markers['Enabled'] and markers['Topic']['Value'] == '/markers'
    from vizion3d_ros.ros.markers import ObjectMarkers
    m = ObjectMarkers(namespace='vizion3d')
    assert {m.box_ns, m.label_ns} <= set(markers['Namespaces'])
    image = by_class['rviz_default_plugins/Image']
    assert image['Enabled'] and image['Topic']['Value'] == '/debug_image'


def test_launch_passes_lifecycle_and_debug_image_parameters():
    params = next(k.value for k in _our_node(_launch_tree()).keywords if k.arg == 'parameters')
    overrides = {key.value: value for d in params.elts if isinstance(d, ast.Dict)
                 for key, value in zip(d.keys, d.values)}
    from vizion3d_ros.ros.params import NodeSettings
    assert set(overrides) <= {f.name for f in dataclasses.fields(NodeSettings)}
    assert {'model', 'autostart', 'publish_debug_image'} <= set(overrides)


def test_cmake_installs_launch_config_and_node_script():
    text = (ROOT / 'CMakeLists.txt').read_text()
    share = re.findall(r'install\(DIRECTORY\s+([^)]*?)\s+DESTINATION\s+share/\$\{PROJECT_NAME\}', text)
    assert {'launch', 'config'} <= {d for args in share for d in args.split()}
    variables = dict(re.findall(r'set\((\w+)\s+([^)]*)\)', text))
    programs = re.findall(r'install\(PROGRAMS\s+([^)]*?)\s+DESTINATION\s+lib/\$\{PROJECT_NAME\}', text)
    expanded = re.sub(r'\$\{(\w+)\}', lambda m: variables.get(m[1], m[0]), ' '.join(programs))
    assert 'scripts/vizion3d_node' in expanded.split()


def test_node_script_runs_the_node_main():
    script = ROOT / 'scripts' / 'vizion3d_node'
    assert script.is_file() and os.access(script, os.X_OK)
    imports = {(n.module, a.name) for n in ast.walk(ast.parse(script.read_text()))
               if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ('vizion3d_ros.ros.node', 'main') in imports


def test_package_xml_declares_an_interface_package_with_its_message_deps():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'vizion3d_ros'
    assert root.findtext('export/build_type') == 'ament_cmake'
    assert 'rosidl_interface_packages' in {e.text for e in root.findall('member_of_group')}
    used = {token.split('/')[0]
            for msg in ROOT.glob('msg/*.msg') for line in msg.read_text().splitlines()
            for token in line.split('#')[0].split()[:1] if '/' in token}
    assert MSG_PACKAGES <= used  # the parsing found the message packages
    assert used <= {e.text for e in root.findall('depend')}
