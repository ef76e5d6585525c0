import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, formatSize, parseDuration, parseSize, UnitError } from '../../src/config/units.js';

test('durations become milliseconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration(' 10s '), 10_000);
});

test('a plain duration number means seconds, from YAML or env', () => {
  assert.equal(parseDuration(30), 30_000);
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration('0.25'), 250);
  assert.equal(parseDuration(0), 0);
});

test('bad durations are rejected with the value in the message', () => {
  for (const bad of ['', '5x', 'm5', '5 m', '-5s', '5mm', 'forever']) {
    assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof UnitError && e.message.includes(`"${bad}"`), bad);
  }
  assert.throws(() => parseDuration(-1), UnitError);
});

test('sizes: binary and decimal units, case-insensitive, plain bytes', () => {
  assert.equal(parseSize('50GiB'), 50 * 2 ** 30);
  assert.equal(parseSize('200MB'), 200_000_000);
  assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(parseSize('4KiB'), 4096);
  assert.equal(parseSize('1TiB'), 2 ** 40);
  assert.equal(parseSize('3KB'), 3000);
  assert.equal(parseSize('2GB'), 2e9);
  assert.equal(parseSize('1TB'), 1e12);
  assert.equal(parseSize('50 gib'), 50 * 2 ** 30);
  assert.equal(parseSize('1024'), 1024);
  assert.equal(parseSize(1024), 1024);
  assert.equal(parseSize('10B'), 10);
});

test('bad sizes are rejected', () => {
  for (const bad of ['12XB', '', 'GiB', '1.5', '-1GiB', '1 2GiB']) {
    assert.throws(() => parseSize(bad), UnitError, bad);
  }
  assert.throws(() => parseSize(1.5), UnitError);
  assert.throws(() => parseSize('99999999PiB'), UnitError);
});

test('format helpers round-trip', () => {
  for (const d of ['500ms', '30s', '5m', '2h', '7d']) assert.equal(formatDuration(parseDuration(d)), d);
  for (const s of ['4MiB', '64GiB', '1TiB', '100B']) assert.equal(formatSize(parseSize(s)), s);
});
