// The direction of imports inside src/ (docs/developing.md: Layout), checked by `npm run lint`.
// Each folder may import its own layer and the layers below it; nothing imports in a cycle.
const LAYERS = [
  ['kube', 'files'], // shared Kubernetes shapes and helpers; file polling
  ['observability'], // logger, metrics
  ['tls'],
  ['config'], // the config's schema and default: data, no behaviour
  ['policy'], // the config compiled, the rules, the mutation; loading and watching it
  ['images'], // registries, inspection, content scanning and its stores
  ['cluster'], // what the config implies for the cluster: manifests, the guard, the self-check
  ['admission'], // the review pipeline
  ['http'], // the HTTPS edge
  ['server'], // the composition root of the webhook server and what survives reloads
  ['cli', 'main.ts'], // the command line and the process entry point
];
const folder = (name) => (name.endsWith('.ts') ? `^src/${name.replace('.', '\\.')}$` : `^src/${name}/`);
const rules = LAYERS.flatMap((layer, i) =>
  layer.map((name) => ({
    name: `${name}-imports-downwards`,
    comment: `src/${name} may import only ${LAYERS.slice(0, i + 1)
      .flat()
      .join(', ')}`,
    severity: 'error',
    from: { path: folder(name) },
    to: {
      path: '^src/',
      pathNot: LAYERS.slice(0, i + 1)
        .flat()
        .map(folder),
    },
  })),
);

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
    ...rules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    exclude: { path: '^(dist|node_modules)/' },
  },
};
