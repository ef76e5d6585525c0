import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseChallenges, pickChallenge } from '../../src/upstream/auth/challenge.js';

const cases: Array<{ name: string; header: string; want: Array<{ scheme: string; params: Record<string, string>; token68?: string }> }> = [
  {
    name: 'Docker Hub bearer',
    header: 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
    want: [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
  },
  { name: 'basic realm', header: 'Basic realm="Registry Realm"', want: [{ scheme: 'basic', params: { realm: 'Registry Realm' } }] },
  {
    name: 'case-insensitive scheme and names, unquoted values, spaces around =',
    header: 'BEARER Realm = https://a.test/token , SERVICE=svc',
    want: [{ scheme: 'bearer', params: { realm: 'https://a.test/token', service: 'svc' } }],
  },
  {
    name: 'quoted comma and scope list',
    header: 'Bearer realm="https://a.test/token",scope="repository:a:pull,push repository:b:pull"',
    want: [{ scheme: 'bearer', params: { realm: 'https://a.test/token', scope: 'repository:a:pull,push repository:b:pull' } }],
  },
  {
    name: 'escaped quotes and backslashes',
    header: 'Basic realm="say \\"hi\\", then \\\\ leave"',
    want: [{ scheme: 'basic', params: { realm: 'say "hi", then \\ leave' } }],
  },
  {
    name: 'several challenges in one header (RFC 9110 example)',
    header: 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
    want: [
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
    ],
  },
  {
    name: 'bearer then basic with error param',
    header: 'Bearer realm="https://t/x",service="s",error="invalid_token", Basic realm="r"',
    want: [
      { scheme: 'bearer', params: { realm: 'https://t/x', service: 's', error: 'invalid_token' } },
      { scheme: 'basic', params: { realm: 'r' } },
    ],
  },
  { name: 'token68', header: 'Negotiate abc+/def==, Basic realm="x"', want: [{ scheme: 'negotiate', params: {}, token68: 'abc+/def==' }, { scheme: 'basic', params: { realm: 'x' } }] },
  { name: 'bare scheme', header: 'Basic', want: [{ scheme: 'basic', params: {} }] },
  { name: 'empty', header: '', want: [] },
  { name: 'empty list elements', header: ' , Basic realm="x" ,, ', want: [{ scheme: 'basic', params: { realm: 'x' } }] },
  { name: 'unterminated quote keeps what is there', header: 'Basic realm="abc', want: [{ scheme: 'basic', params: { realm: 'abc' } }] },
];

for (const c of cases) {
  test(`parseChallenges: ${c.name}`, () => {
    const got = parseChallenges(c.header).map((ch) => (ch.token68 === undefined ? { scheme: ch.scheme, params: ch.params } : ch));
    assert.deepEqual(got, c.want);
  });
}

test('several WWW-Authenticate header lines are all parsed', () => {
  const got = parseChallenges(['Basic realm="a"', 'Bearer realm="https://t/token"']);
  assert.deepEqual(got.map((c) => c.scheme), ['basic', 'bearer']);
});

test('pickChallenge prefers Bearer, falls back to Basic, ignores unknown schemes', () => {
  assert.equal(pickChallenge(parseChallenges('Basic realm="a", Bearer realm="https://t"'))?.scheme, 'bearer');
  assert.equal(pickChallenge(parseChallenges('Newauth x=1, Basic realm="a"'))?.scheme, 'basic');
  assert.equal(pickChallenge(parseChallenges('Newauth x=1')), undefined);
});
