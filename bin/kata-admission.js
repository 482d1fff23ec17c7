#!/usr/bin/env node
// Runs the compiled CLI; `npm install` builds it through the `prepare` script.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'kata-admission: not built yet; run `npm install` (or `npm run build`) in the package folder\n',
  );
  process.exit(1);
}
await import(entry.href);
