"""Assemble docs/BENCHMARKS.md from the benchmark scripts' outputs (``make bench`` runs it last).

Each script writes ``<name>.json`` and a markdown section ``<name>.md`` into docs/bench; the lifting
benchmark of issue 3 writes docs/bench_lifting.json. This script puts the targets first (read from the
JSONs, so the page never states a number that was not measured), then the sections, then the machines
the numbers came from.

    python bench/report.py [--bench-dir docs/bench] [--lifting docs/bench_lifting.json] [--out docs/BENCHMARKS.md]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Sections in reading order: name of the JSON/markdown pair and what it answers.
SECTIONS = ('scaling', 'conversions', 'node', 'transport', 'fusion', 'map', 'soak_map', 'load_servers')
#: The script that writes a section, where it is not ``bench_<name>.py``.
SCRIPTS = {'soak_map': 'soak_map.py', 'load_servers': 'load_servers.py'}
LIFTING_TARGET_MS = 10.0


def _script(name: str) -> str:
    return SCRIPTS.get(name, f'bench_{name}.py')


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def lifting_target(lifting: dict | None) -> list[dict]:
    """The issue-3 target from bench_lifting.json: VGA organised cloud, 10 instances, visible mode."""
    if not lifting:
        return []
    case = next((c for c in lifting['cases'] if c['name'] == 'depth_vga_clean'), None)
    if case is None:
        return []
    m = case['modes']['visible']
    return [{'name': 'Lifting, VGA organised depth cloud, 10 instances, visible mode (occlusion + cleanup)',
             'limit_ms': LIFTING_TARGET_MS, 'measured_ms': m['median_ms'],
             'spread': f"p10-p90 {m['p10_ms']:.1f}-{m['p90_ms']:.1f} ms, {m['runs']} runs; naive "
                       f"{case['modes']['naive']['median_ms']:.1f} ms in the same run",
             'met': m['median_ms'] <= LIFTING_TARGET_MS, 'source': 'bench_lifting.py (docs/bench_lifting.json)'}]


def conversion_targets(conv: dict | None) -> list[dict]:
    """The 300k-point conversion targets from conversions.json (``target``: medians per case and way)."""
    t = (conv or {}).get('target')
    if not t:
        return []
    out = []
    for way, title in (('read', 'PointCloud2 -> arrays (GL points + colours)'),
                       ('write', 'arrays -> colourised PointCloud2')):
        cases = t.get(way, {}).get('median_ms', {})
        if cases:
            worst = max(cases, key=cases.get)
            out.append({'name': f'Conversion of a 300k-point cloud, {title}', 'limit_ms': t['limit_ms'],
                        'measured_ms': cases[worst],
                        'spread': 'slowest layout: ' + worst + '; all: ' + ', '.join(
                            f'{k} {v:.2f}' for k, v in cases.items()),
                        'met': cases[worst] <= t['limit_ms'],
                        'source': 'bench_conversions.py (docs/bench/conversions.json)'})
    return out


def fusion_targets(fusion: dict | None) -> list[dict]:
    """The issue-13 targets from fusion.json (``target``): a frame's integration, propagation of 800k and 4M points."""
    t = (fusion or {}).get('target')
    if not t:
        return []
    source = 'bench_fusion.py (docs/bench/fusion.json)'
    quick = '; quick run (small sizes)' if fusion.get('quick') else ''
    out = []
    i = t.get('integration')
    if i:
        out.append({'name': f"Fusion: VGA frame with {'-'.join(map(str, i['masks']))} masks into a "
                            f"{i['map_voxels'] / 1e6:.2f}M-voxel map (`SceneFusion.add_frame`, instance mode, 1 cm)",
                    'limit_ms': i['limit_ms'], 'measured_ms': i['median_ms'],
                    'spread': f"p10-p90 {i['p10_ms']:.1f}-{i['p90_ms']:.1f} ms, {i['runs']} runs; "
                              f"`VoxelMap.integrate` alone {i['integrate_alone_ms']:.1f} ms; slowest stage: "
                              f"{i['slowest_stage']} {i['slowest_stage_ms']:.1f} ms{quick}",
                    'met': i['met'], 'source': source})
    for p in t.get('propagation', []):
        out.append({'name': f"Fusion: label propagation of {p['points'] / 1e6:g}M surface points "
                            f"({p['coverage_before']:.0%} labelled, 5 cm, quorum 3)",
                    'limit_ms': p['limit_ms'], 'measured_ms': p['median_ms'],
                    'spread': f"p10-p90 {p['p10_ms']:.0f}-{p['p90_ms']:.0f} ms, {p['runs']} runs; slower labelling: "
                              + ', '.join(f'{k} {v:.0f}' for k, v in p['by_labels'].items())
                              + f" ms; tutorial way ~{p['tutorial_ms'] / 1e3:.0f} s (extrapolated){quick}",
                    'met': p['met'], 'source': source})
    return out


def targets(results: dict[str, dict], lifting: dict | None) -> list[dict]:
    """Every target a benchmark reports (its JSON's ``targets`` list), the lifting's first."""
    out = (lifting_target(lifting) + conversion_targets(results.get('conversions'))
           + fusion_targets(results.get('fusion')))
    for name in SECTIONS:
        for t in (results.get(name) or {}).get('targets', []):
            out.append({**t, 'source': t.get('source', f'{_script(name)} (docs/bench/{name}.json)')})
    return out


def _machine_line(name: str, m: dict) -> str:
    load = m.get('load_average') or m.get('load_average_at_start')
    load_s = ', '.join(f'{x:.2f}' for x in load) if load else 'n/a'
    probe = m.get('speed_probe_ms')
    probe_s = f'{probe:.1f} ms' if probe is not None else 'n/a'
    return (f"| {name} | {m.get('date', '?')} | {m.get('git_commit', '?')} | {m.get('cpu', '?')} | "
            f"{m.get('cpu_count', '?')} | {load_s} | {probe_s} |")


def render(results: dict[str, dict], sections: dict[str, str], lifting: dict | None) -> str:
    ts = targets(results, lifting)
    lines = [
        '# Benchmarks', '',
        'What vizion3d_ros costs per frame, measured side by side with the straightforward way of doing the '
        'same thing. Everything on this page is produced by one command, on whatever machine it runs on:', '',
        '```bash', 'make bench   # about 15 minutes on 2 cores; writes docs/bench/* and this page', '```', '',
        'The machines are shared and noisy, so every number is a median with its spread (p10-p90) over '
        'repeated runs, and comparisons are ratios of medians taken in the same run (variants interleaved). '
        'Nothing here is asserted by the test suite: the tests only check that each script runs '
        '(`--quick`) and writes well-formed results (`test/test_bench_*.py`).', '',
        '## Targets', '',
        '| target | limit | measured (median) | spread | met | from |', '|---|---:|---:|---|---|---|']
    for t in ts:
        lines.append(f"| {t['name']} | <= {t['limit_ms']:g} ms | {t['measured_ms']:.1f} ms | {t.get('spread', '')} | "
                     f"{'yes' if t['met'] else '**no**'} | {t['source']} |")
    if not ts:
        lines.append('| (no results yet: run `make bench`) | | | | | |')
    lines += ['']
    if lifting:
        from bench_lifting import markdown_table

        lines += ['## Lifting modes on the standard cases (issue 3)', '',
                  '`bench/bench_lifting.py`: `lift_masks` per mode on the cases of '
                  '[docs/LIFTING.md](LIFTING.md#speed) (the VGA depth clouds of the 10-object scene with and '
                  'without Kinect-like noise, the real TUM frame with YOLO masks, an offset sensor, '
                  'unorganised clouds); medians, p10-p90 and the visible / naive ratio of the same run.', '',
                  markdown_table(lifting['cases']), '',
                  *[f"- {c['name']}: {c['description']}" for c in lifting['cases']], '']
    for name in SECTIONS:
        if name in sections:
            lines += [sections[name].rstrip(), '']
        else:
            lines += [f'## {name}', '', f'No results: `bench/{_script(name)}` has not been run here.', '']
    lines += ['## Machines', '',
              'Where and when each part was measured: the load average and the speed probe at the start of the '
              'run. The probe (`bench/_machine.py`, `speed_probe`) times the same single-threaded numpy work '
              'every time, lower is faster: it tells a slow machine from slow code when runs are compared.', '',
              '| part | date (UTC) | commit | CPU | CPUs | load (1, 5, 15 min) | speed probe |',
              '|---|---|---|---|---:|---|---:|']
    if lifting:
        lines.append(_machine_line('lifting modes', lifting['machine']))
    for name in SECTIONS:
        if results.get(name):
            lines.append(_machine_line(name, results[name]['machine']))
    return '\n'.join(lines) + '\n'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--bench-dir', default=str(ROOT / 'docs' / 'bench'))
    p.add_argument('--lifting', default=str(ROOT / 'docs' / 'bench_lifting.json'))
    p.add_argument('--out', default=str(ROOT / 'docs' / 'BENCHMARKS.md'))
    args = p.parse_args()
    bench = Path(args.bench_dir)
    results = {n: r for n in SECTIONS if (r := _load(bench / f'{n}.json')) is not None}
    sections = {n: (bench / f'{n}.md').read_text() for n in SECTIONS if (bench / f'{n}.md').is_file()}
    out = Path(args.out)
    out.write_text(render(results, sections, _load(Path(args.lifting))))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
