import { benchEngine } from './engine.ts';
const r = await benchEngine();
for (const e of r)
  console.log(
    e.pod,
    (e.jsonParseNs / 1000).toFixed(1),
    (e.engineNs / 1000).toFixed(1),
    e.engineRatio.toFixed(2),
    (e.reviewNs / 1000).toFixed(1),
  );
