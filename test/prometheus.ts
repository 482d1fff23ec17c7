// A strict reader of the Prometheus text format (0.0.4), enough to check and query /metrics.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

// Values as Go's strconv.ParseFloat reads them (Prometheus' own parser): NaN and Inf in any case.
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.eE+-]+|[Nn][Aa][Nn]|[+-]?[Ii][Nn][Ff])(?: -?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/g;

export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL))
      labels[key!] = value!.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    samples.push({
      name: match[1]!,
      labels,
      value: Number(match[3]!.replace(/^([+-]?)inf$/i, '$1Infinity').replace(/^nan$/i, 'NaN')),
    });
  }
  return samples;
}
