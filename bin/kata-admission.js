#!/usr/bin/env node
// Runs the compiled CLI; `npm install` builds it through the `prepare` script.
import { existsSync } from 'node:fs';

// Checked before anything is imported: an older Node fails on an import it lacks, with an
// error that does not say what is needed.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `kata-admission: needs Node.js 22.19 or later (24 LTS recommended); this is ${process.versions.node}\n`,
  );
  process.exit(1);
}

const entry = new URL('../dist/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'kata-admission: not built yet; run `npm install` (or `npm run build`) in the package folder\n',
  );
  process.exit(1);
}
await import(entry.href);
