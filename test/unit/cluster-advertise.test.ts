import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { networkInterfaces } from 'node:os';
import { defaultAdvertiseUrl } from '../../src/cluster.js';

type Interfaces = ReturnType<typeof networkInterfaces>;
const nic = (address: string, internal: boolean, family: 'IPv4' | 'IPv6' = 'IPv4') =>
  ({ address, internal, family, netmask: '', mac: '', cidr: null }) as unknown as NonNullable<Interfaces[string]>[number];

test('a wildcard listen advertises the first non-loopback IPv4 (the container address peers reach)', () => {
  const ifs: Interfaces = { lo: [nic('127.0.0.1', true)], eth0: [nic('fe80::1', false, 'IPv6'), nic('10.0.1.7', false)] };
  assert.equal(defaultAdvertiseUrl('0.0.0.0:5000', ifs), 'http://10.0.1.7:5000');
  assert.equal(defaultAdvertiseUrl(':5000', ifs), 'http://10.0.1.7:5000');
});

test('an explicit listen host is advertised as it is; loopback only when nothing else exists', () => {
  assert.equal(defaultAdvertiseUrl('127.0.0.1:5001', {}), 'http://127.0.0.1:5001');
  assert.equal(defaultAdvertiseUrl('0.0.0.0:5000', { lo: [nic('127.0.0.1', true)] }), 'http://127.0.0.1:5000');
});
