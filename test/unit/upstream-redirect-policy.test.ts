import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  classifyAddress,
  hostMatches,
  realmNamePolicy,
  redirectAddressPolicy,
  registrableDomain,
  redirectNamePolicy,
  type AddressClass,
  type RedirectContext,
} from '../../src/upstream/redirect-policy.js';

const table: Array<[string, AddressClass]> = [
  ['8.8.8.8', 'public'],
  ['151.101.1.69', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.0.9', 'loopback'],
  ['10.1.2.3', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.168.1.1', 'private'],
  ['169.254.169.254', 'link-local'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.1', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['224.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['192.0.2.10', 'reserved'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf::1', 'link-local'],
  ['fc00::1', 'unique-local'],
  ['fd12:3456::1', 'unique-local'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:169.254.169.254', 'link-local'],
  ['::ffff:8.8.8.8', 'public'],
  ['64:ff9b::10.0.0.1', 'private'],
  ['2002:c0a8:0101::1', 'private'],
  ['ff02::1', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['2606:4700::1111', 'public'],
  ['2a00:1450:4001:82b::200e', 'public'],
  ['not-an-ip', 'reserved'],
];

for (const [ip, cls] of table) {
  test(`classifyAddress(${ip}) = ${cls}`, () => assert.equal(classifyAddress(ip), cls));
}

const u = (s: string): URL => new URL(s);

test('hostMatches: exact names, ports, wildcards, IP literals', () => {
  assert.equal(hostMatches('cdn.example.com', u('https://cdn.example.com/x')), true);
  assert.equal(hostMatches('CDN.Example.com', u('https://cdn.example.com./x')), true);
  assert.equal(hostMatches('cdn.example.com', u('https://evil-cdn.example.com/x')), false);
  assert.equal(hostMatches('cdn.example.com', u('https://cdn.example.com.evil.test/x')), false);
  assert.equal(hostMatches('cdn.example.com:8443', u('https://cdn.example.com:8443/x')), true);
  assert.equal(hostMatches('cdn.example.com:8443', u('https://cdn.example.com/x')), false);
  assert.equal(hostMatches('cdn.example.com:443', u('https://cdn.example.com/x')), true);
  assert.equal(hostMatches('*.cloudfront.net', u('https://d1.cloudfront.net/x')), true);
  assert.equal(hostMatches('*.cloudfront.net', u('https://a.b.cloudfront.net/x')), true);
  assert.equal(hostMatches('*.cloudfront.net', u('https://cloudfront.net/x')), false);
  assert.equal(hostMatches('*.cloudfront.net', u('https://evilcloudfront.net/x')), false);
  assert.equal(hostMatches('127.0.0.1:5001', u('http://127.0.0.1:5001/x')), true);
  assert.equal(hostMatches('127.0.0.1:5001', u('http://127.0.0.1:5002/x')), false);
  assert.equal(hostMatches('127.0.0.1', u('http://127.0.0.1:5002/x')), true);
  assert.equal(hostMatches('[::1]:5001', u('http://[::1]:5001/x')), true);
  assert.equal(hostMatches('', u('http://a/x')), false);
});

const ctx = (over: Partial<RedirectContext> = {}): RedirectContext => ({
  upstream: u('https://registry-1.docker.io'),
  redirectHosts: ['*.cloudflare.docker.com', '127.0.0.1:7000'],
  redirectPublicHttps: false,
  upstreamClasses: new Set<AddressClass>(['public']),
  ...over,
});

test('redirectNamePolicy: only listed hosts, same origin, or opt-in public https', () => {
  assert.deepEqual(redirectNamePolicy(u('https://registry-1.docker.io/v2/x'), ctx()), { ok: true, by: 'origin' });
  assert.deepEqual(redirectNamePolicy(u('https://production.cloudflare.docker.com/b'), ctx()), { ok: true, by: 'list' });
  assert.equal(redirectNamePolicy(u('https://s3.amazonaws.com/b'), ctx()).ok, false);
  assert.deepEqual(redirectNamePolicy(u('https://s3.amazonaws.com/b'), ctx({ redirectPublicHttps: true })), { ok: true, by: 'public' });
  // downgrade, other schemes and userinfo are refused whatever the lists say
  assert.equal(redirectNamePolicy(u('http://production.cloudflare.docker.com/b'), ctx()).ok, false);
  assert.equal(redirectNamePolicy(u('ftp://production.cloudflare.docker.com/b'), ctx()).ok, false);
  assert.equal(redirectNamePolicy(u('https://a:b@production.cloudflare.docker.com/b'), ctx()).ok, false);
  assert.equal(redirectNamePolicy(u('http://127.0.0.1:7000/b'), ctx({ upstream: u('http://127.0.0.1:5000') })).ok, true);
  assert.equal(redirectNamePolicy(u('http://127.0.0.1:7001/b'), ctx({ upstream: u('http://127.0.0.1:5000') })).ok, false);
});

test('redirectAddressPolicy: internal addresses refused unless the upstream lives there too', () => {
  const pub = ctx();
  assert.equal(redirectAddressPolicy(['104.16.1.1'], 'list', pub).ok, true);
  assert.equal(redirectAddressPolicy(['104.16.1.1', '10.0.0.1'], 'list', pub).ok, false, 'one internal answer is enough to refuse');
  assert.equal(redirectAddressPolicy(['169.254.169.254'], 'list', pub).ok, false);
  assert.equal(redirectAddressPolicy(['::ffff:127.0.0.1'], 'list', pub).ok, false);
  assert.equal(redirectAddressPolicy([], 'list', pub).ok, false);
  const loop = ctx({ upstreamClasses: new Set<AddressClass>(['loopback']) });
  assert.equal(redirectAddressPolicy(['127.0.0.1'], 'list', loop).ok, true);
  assert.equal(redirectAddressPolicy(['10.0.0.1'], 'list', loop).ok, false, 'only the upstream’s own class');
  assert.equal(redirectAddressPolicy(['0.0.0.0'], 'list', loop).ok, false);
  // opt-in public https means public: no exception for the upstream's class
  assert.equal(redirectAddressPolicy(['127.0.0.1'], 'public', loop).ok, false);
  assert.equal(redirectAddressPolicy(['8.8.8.8'], 'public', loop).ok, true);
});

test('registrableDomain: last two labels, three under a country SLD, an IP only itself', () => {
  const cases: Array<[string, string]> = [
    ['registry-1.docker.io', 'docker.io'],
    ['auth.docker.io', 'docker.io'],
    ['ghcr.io', 'ghcr.io'],
    ['container-registry.oracle.com', 'oracle.com'],
    ['registry.example.co.uk', 'example.co.uk'],
    ['evil.co.uk', 'evil.co.uk'],
    ['Auth.Docker.IO.', 'docker.io'],
    ['localhost', 'localhost'],
    ['127.0.0.1', '127.0.0.1'],
    ['[::1]', '::1'],
  ];
  for (const [host, want] of cases) assert.equal(registrableDomain(host), want, host);
});

test('realmNamePolicy: own host (any port), same registrable domain, or tokenRealmHosts; nothing else', () => {
  const hub = { upstream: u('https://registry-1.docker.io'), tokenRealmHosts: [] };
  assert.deepEqual(realmNamePolicy(u('https://auth.docker.io/token'), hub), { ok: true, by: 'list' });
  assert.deepEqual(realmNamePolicy(u('https://registry-1.docker.io:8443/token'), hub), { ok: true, by: 'origin' });
  for (const bad of ['https://auth.docker.io.evil.test/token', 'https://docker.io.evil.test/token', 'https://evil.test/token', 'https://127.0.0.1/token', 'file:///etc/passwd', 'https://u:p@auth.docker.io/token']) {
    assert.equal(realmNamePolicy(u(bad), hub).ok, false, bad);
  }
  // an IP upstream has no domain: only its own address, or what the operator lists
  const ip = { upstream: u('http://127.0.0.1:5000'), tokenRealmHosts: ['localhost:6000'] };
  assert.deepEqual(realmNamePolicy(u('http://127.0.0.1:5001/token'), ip), { ok: true, by: 'origin' });
  assert.equal(realmNamePolicy(u('http://127.0.0.2:5001/token'), ip).ok, false);
  assert.equal(realmNamePolicy(u('http://169.254.169.254/token'), ip).ok, false);
  assert.deepEqual(realmNamePolicy(u('http://localhost:6000/token'), ip), { ok: true, by: 'list' });
  assert.equal(realmNamePolicy(u('http://localhost:6001/token'), ip).ok, false);
  const uk = { upstream: u('https://registry.example.co.uk'), tokenRealmHosts: [] };
  assert.equal(realmNamePolicy(u('https://auth.example.co.uk/t'), uk).ok, true);
  assert.equal(realmNamePolicy(u('https://evil.co.uk/t'), uk).ok, false, 'co.uk is not a shared domain');
});
