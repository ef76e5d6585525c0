import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isStringMap, jsonDepthWithin } from '../../src/oci/index.js';

const bytes = (s: string) => Buffer.from(s);

it('jsonDepthWithin counts objects and arrays, not brackets inside strings', () => {
  assert.equal(jsonDepthWithin(bytes('{"a":[{"b":1}]}'), 3), true);
  assert.equal(jsonDepthWithin(bytes('{"a":[{"b":1}]}'), 2), false);
  assert.equal(jsonDepthWithin(bytes('{"a":"[[[[{{{{"}'), 1), true);
  assert.equal(jsonDepthWithin(bytes('{"a":"\\"[[[[","b":"\\\\"}'), 1), true, 'escaped quote and escaped backslash');
  assert.equal(jsonDepthWithin(bytes('{"a":"\\\\",  "b":[[]]}'), 2), false, 'a string ending in a backslash closes');
  assert.equal(jsonDepthWithin(bytes(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`)), false);
  assert.equal(jsonDepthWithin(bytes('{}'), 0), false);
  assert.equal(jsonDepthWithin(bytes('"x"'), 0), true);
});

it('isStringMap accepts objects of strings only', () => {
  assert.equal(isStringMap({}), true);
  assert.equal(isStringMap({ a: 'b', c: '' }), true);
  for (const v of [null, undefined, 'a', 1, [], ['a'], { a: 1 }, { a: null }, { a: { b: 'c' } }, { a: 'b', c: true }]) {
    assert.equal(isStringMap(v), false, JSON.stringify(v));
  }
});
