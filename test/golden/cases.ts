// The golden cases: every golden config crossed with every executor fixture and the example pod.
type Read = (path: URL, encoding: 'utf8') => string;

const ROOT = new URL('../../', import.meta.url);
const FIXTURES = ['build-plain', 'build-dind', 'build-rhel6', 'build-buildkit'];

export function goldenCases(read: Read, parseYaml: (text: string) => unknown) {
  const configs = JSON.parse(read(new URL('test/golden/configs.json', ROOT), 'utf8')) as Record<
    string,
    string
  >;
  const documents: [string, unknown][] = [
    ...FIXTURES.map(
      (f) => [f, JSON.parse(read(new URL(`test/fixtures/${f}.json`, ROOT), 'utf8'))] as [string, unknown],
    ),
    ['example-pod', parseYaml(read(new URL('examples/build-pod.yaml', ROOT), 'utf8'))],
  ];
  return Object.entries(configs).flatMap(([configName, text]) => {
    const configText = text.startsWith('@') ? read(new URL(text.slice(1), ROOT), 'utf8') : text;
    return documents.map(([doc, review]) => ({
      name: `${configName}/${doc}`,
      configText,
      review: structuredClone(review),
    }));
  });
}
