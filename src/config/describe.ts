import { configSchema } from './schema.js';
import { childrenOf, elementOf, envSegment, inspect } from './walk.js';
import type { z } from 'zod';

export interface OptionDescription {
  /** YAML path; list items are written `[]` (`upstreams[].url`, `push.overlay[]`) */
  key: string;
  /** env variable; list indexes are written `<n>`; '' for lists of objects, which env cannot set whole */
  env: string;
  /** as a user would write it; '' when there is none */
  default: string;
  description: string;
}

/** Every documented option, in schema order, generated from the schema itself (for the README table). */
export function describeOptions(): OptionDescription[] {
  const out: OptionDescription[] = [];
  const visit = (schema: z.ZodType, key: string, env: string): void => {
    const node = inspect(schema);
    if (node.kind === 'object') {
      if (node.doc) out.push({ key, env: '', default: node.doc.default, description: node.doc.description });
      for (const [k, child] of childrenOf(node)) {
        visit(child, key === '' ? k : `${key}.${k}`, `${env}_${envSegment(k)}`);
      }
    } else if (node.kind === 'array' && inspect(elementOf(node)).kind === 'object') {
      if (node.doc) out.push({ key, env: '', default: node.doc.default, description: node.doc.description });
      visit(elementOf(node), `${key}[]`, `${env}_<n>`);
    } else if (node.kind === 'array') {
      out.push({ key: `${key}[]`, env: `${env}_<n>`, default: node.doc?.default ?? '', description: node.doc?.description ?? '' });
    } else {
      out.push({ key, env, default: node.doc?.default ?? '', description: node.doc?.description ?? '' });
    }
  };
  visit(configSchema, '', 'WHARF');
  return out;
}
