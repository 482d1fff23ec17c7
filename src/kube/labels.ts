// Kubernetes label syntax and label selectors, as the API server defines them
// (apimachinery/pkg/util/validation and pkg/labels), so config errors match what kubectl would say.

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

/** A qualified name: `[prefix/]name`, as used for label and annotation keys. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0 && !isDnsSubdomain(key.slice(0, slash))) return false;
  return name.length > 0 && name.length <= 63 && NAME.test(name);
}

export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && NAME.test(value));
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Labels = Readonly<Record<string, unknown>>;
export type LabelMatcher = (labels: Labels) => boolean;

/** Compiles a selector once; an empty selector matches every object, as in Kubernetes. */
export function compileSelector(selector: LabelSelector): LabelMatcher {
  const pairs = Object.entries(selector.matchLabels ?? {});
  const expressions = (selector.matchExpressions ?? []).map((e) => ({
    ...e,
    values: new Set(e.values ?? []),
  }));
  return (labels) => {
    for (const [key, value] of pairs) if (labels[key] !== value) return false;
    for (const { key, operator, values } of expressions) {
      const has = typeof labels[key] === 'string';
      const value = labels[key] as string;
      switch (operator) {
        case 'In':
          if (!has || !values.has(value)) return false;
          break;
        case 'NotIn':
          if (has && values.has(value)) return false;
          break;
        case 'Exists':
          if (!has) return false;
          break;
        case 'DoesNotExist':
          if (has) return false;
          break;
      }
    }
    return true;
  };
}
