import { z } from 'zod';
import { docs, type OptionDoc } from './schema.js';

/** A schema node seen through its optional/default wrappers, with the docs found on the way. */
export interface Node {
  kind: 'object' | 'array' | 'leaf';
  schema: z.ZodType;
  doc?: OptionDoc;
}

export function inspect(schema: z.ZodType): Node {
  let s: z.ZodType = schema;
  let doc = docs.get(s);
  while (s instanceof z.ZodOptional || s instanceof z.ZodPrefault || s instanceof z.ZodDefault) {
    s = s.unwrap() as z.ZodType;
    doc ??= docs.get(s);
  }
  const kind = s instanceof z.ZodObject ? 'object' : s instanceof z.ZodArray ? 'array' : 'leaf';
  return doc ? { kind, schema: s, doc } : { kind, schema: s };
}

export function childrenOf(node: Node): Array<[string, z.ZodType]> {
  return node.schema instanceof z.ZodObject ? Object.entries(node.schema.shape as Record<string, z.ZodType>) : [];
}

export function elementOf(node: Node): z.ZodType {
  return (node.schema as z.ZodArray<z.ZodType>).element;
}

/** `cache.maxSize` → `CACHE_MAX_SIZE` segment-wise: `maxSize` → `MAX_SIZE`. */
export function envSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}
