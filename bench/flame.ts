// A V8 CPU profile (`node --cpu-prof`) as a tree of merged call stacks, a flame graph (SVG, each
// frame's width its share of the samples, hover for its figures), and self time by area of code.

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  name: string;
  area: string;
  /** Microseconds in this frame and below. */
  us: number;
  children: Map<string, Frame>;
}

const NOT_WORK = new Set(['(idle)']);

/** Where a frame's code lives; a frame without a script (a builtin, native code) is its caller's. */
function areaOf(url: string, functionName: string, root: string, caller: string): string {
  if (functionName === '(garbage collector)') return 'V8: garbage collector';
  if (functionName === '(program)') return 'V8 and native code outside JavaScript';
  if (!url) return caller;
  if (url.startsWith('node:')) {
    const m = /tls|http|net|stream|crypto/.exec(url);
    return `Node: ${m ? { tls: 'TLS', http: 'HTTP', net: 'sockets', stream: 'streams', crypto: 'crypto' }[m[0]] : 'other'}`;
  }
  const path = url.replace(/^file:\/\//, '').replace(root, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return `library: ${pkg[1]}`;
  const ours = /^dist\/([^/]+)\//.exec(path);
  return ours ? `kata-admission: src/${ours[1]}/` : path;
}

/** Each node's own time, from the samples and the time before each. */
function selfTimes(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  return self;
}

/** The call tree with the same calls merged, idle time left out. */
export function profileTree(profile: CpuProfile, root: string): Frame {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = selfTimes(profile);
  const top: Frame = { name: 'all', area: 'all', us: 0, children: new Map() };
  const visit = (id: number, parent: Frame) => {
    const { callFrame: cf, children = [] } = byId.get(id)!;
    if (NOT_WORK.has(cf.functionName)) return;
    const file = cf.url.replace(/^file:\/\//, '').replace(root, '');
    const name = `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : ''}`;
    let frame = parent.children.get(name);
    if (!frame) {
      frame = { name, area: areaOf(cf.url, cf.functionName, root, parent.area), us: 0, children: new Map() };
      parent.children.set(name, frame);
    }
    frame.us += self.get(id) ?? 0;
    for (const child of children) visit(child, frame);
  };
  for (const child of byId.get(profile.nodes[0]!.id)!.children ?? []) visit(child, top);
  const total = (f: Frame): number => (f.us += [...f.children.values()].reduce((n, c) => n + total(c), 0));
  total(top);
  return top;
}

/** Self time per area, largest first. */
export function selfTimeByArea(top: Frame): { area: string; us: number }[] {
  const areas = new Map<string, number>();
  const walk = (f: Frame) => {
    const below = [...f.children.values()].reduce((n, c) => n + c.us, 0);
    if (f.area !== 'all') areas.set(f.area, (areas.get(f.area) ?? 0) + f.us - below);
    f.children.forEach(walk);
  };
  walk(top);
  return [...areas].map(([area, us]) => ({ area, us })).sort((a, b) => b.us - a.us);
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
/** Orange: ours; green: libraries; blue: Node; grey: the root; red: V8. */
const COLORS: [prefix: string, color: string][] = [
  ['kata-admission', '#e8833a'],
  ['library', '#5fb35f'],
  ['Node', '#6f9fd8'],
  ['all', '#a0a0a0'],
];
const color = (area: string) => COLORS.find(([prefix]) => area.startsWith(prefix))?.[1] ?? '#c05050';

/**
 * A flame graph: the root at the bottom, callees above their callers; frames under half a pixel,
 * and those deeper than `maxLevel` (the module loader's recursion at startup), are left out.
 */
export function flameGraphSvg(top: Frame, width = 1200, row = 16, maxLevel = 40): string {
  const rects: string[] = [];
  let depth = 0;
  const draw = (f: Frame, x: number, level: number) => {
    const w = (f.us / top.us) * width;
    if (w < 0.5 || level > maxLevel) return;
    depth = Math.max(depth, level);
    const share = ((100 * f.us) / top.us).toFixed(1);
    const label = w > 40 ? escape(f.name.slice(0, Math.floor((w - 6) / 6.5))) : '';
    rects.push(
      `<g><title>${escape(f.name)} (${escape(f.area)}): ${share}%</title><rect x="${x.toFixed(1)}" y="LEVEL${level}" width="${w.toFixed(1)}" height="${row - 1}" fill="${color(f.area)}"/><text x="${(x + 3).toFixed(1)}" y="LEVEL${level}T">${label}</text></g>`,
    );
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(c, cx, level + 1);
      cx += (c.us / top.us) * width;
    }
  };
  draw(top, 0, 0);
  const height = (depth + 1) * row + 24;
  const y = (level: number) => height - (level + 1) * row;
  const body = rects
    .join('\n')
    .replace(/LEVEL(\d+)T/g, (_, l) => String(y(Number(l)) + row - 4))
    .replace(/LEVEL(\d+)/g, (_, l) => String(y(Number(l))));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="11">
<text x="4" y="14">kata-admission under load: CPU flame graph (orange: ours; green: libraries; blue: Node; red: V8). Hover a frame for its share.</text>
${body}
</svg>
`;
}
