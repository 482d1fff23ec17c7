// The embedded default, used when no --config is given: the schema's defaults written out as YAML,
// each top-level field under its description, so there is no second copy to keep equal.
import { Document, isMap, isScalar, visit } from 'yaml';
import { configFields, configSchema } from './schema.js';

/** Lists of scalars and maps of scalars fit on one line; longer structures stay in block style. */
function flowSmall(doc: Document): void {
  visit(doc, {
    Seq: (_, node) => void (node.flow = node.items.every(isScalar)),
    Map: (_, node) => void (node.flow = node.items.every((pair) => isScalar(pair.value))),
  });
}

function defaultConfigText(): string {
  const config: Record<string, unknown> = configSchema.parse({});
  const fields = configFields.shape as Record<string, { description?: string }>;
  const ordered = Object.fromEntries(
    Object.keys(fields)
      .filter((key) => key in config)
      .map((key) => [key, config[key]]),
  );
  const doc = new Document(ordered);
  flowSmall(doc);
  if (!isMap(doc.contents)) throw new Error('the default config is not a map');
  for (const pair of doc.contents.items) {
    const description = fields[String((pair.key as { value: unknown }).value)]?.description;
    if (description && isScalar(pair.key)) pair.key.commentBefore = ` ${description}`;
  }
  return doc.toString({ lineWidth: 0 });
}

export const DEFAULT_CONFIG_YAML = defaultConfigText();
