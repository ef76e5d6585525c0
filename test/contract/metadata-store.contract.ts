import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf, type Digest } from '../../src/oci/index.js';
import type { LinkRecord, MetadataStore, TagRecord, UploadRecord } from '../../src/store/types.js';

export interface ContractClock {
  /** Moves the injected clock forward (implementations that use real time ignore it). */
  advance(ms: number): void;
  now(): number;
}

export interface ContractSubject {
  store: MetadataStore;
  cleanup: () => Promise<void>;
  /** Closes `store` and opens the same data again (a process restart). */
  reopen?: () => Promise<MetadataStore>;
}

export type ContractFactory = (opts: { now: () => number }) => Promise<ContractSubject>;

const d = (s: string): Digest => digestOf(s);
const tagRec = (digest: Digest, extra: Partial<TagRecord> = {}): TagRecord => ({
  digest,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: 123,
  checkedAt: 1_700_000_000_000,
  origin: 'upstream',
  ...extra,
});
const blobLink = (size = 10): LinkRecord => ({ kind: 'blob', size, origin: 'upstream', linkedAt: 1 });
const manifestLink = (subject?: Digest, extra: Partial<LinkRecord> = {}): LinkRecord => ({
  kind: 'manifest',
  size: 500,
  origin: 'local',
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  ...(subject ? { subject } : {}),
  linkedAt: 2,
  ...extra,
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/**
 * Behaviour every MetadataStore must show. Each test gets a fresh store from `factory`; the factory receives a
 * clock it should inject where the implementation takes one.
 */
export function metadataStoreContract(name: string, factory: ContractFactory): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let offset = 0;
    const clock: ContractClock = { now: () => Date.now() + offset, advance: (ms) => (offset += ms) };
    let subject: ContractSubject;
    let store: MetadataStore;
    const fresh = async () => {
      offset = 0;
      subject = await factory({ now: clock.now });
      store = subject.store;
    };
    const done = async () => subject.cleanup();

    describe('tags', () => {
      before(fresh);
      after(done);

      it('put, get, overwrite and delete a tag', async () => {
        assert.equal(await store.getTag('r/a', 'v1'), undefined);
        await store.putTag('r/a', 'v1', tagRec(d('m1')));
        assert.deepEqual(await store.getTag('r/a', 'v1'), tagRec(d('m1')));
        await store.putTag('r/a', 'v1', tagRec(d('m2'), { origin: 'local', checkedAt: 5 }));
        assert.deepEqual(await store.getTag('r/a', 'v1'), tagRec(d('m2'), { origin: 'local', checkedAt: 5 }));
        assert.equal(await store.getTag('r/b', 'v1'), undefined, 'tags are per repository');
        assert.equal(await store.deleteTag('r/a', 'v1'), true);
        assert.equal(await store.deleteTag('r/a', 'v1'), false);
        assert.equal(await store.getTag('r/a', 'v1'), undefined);
      });

      it('lists tags lexically with n/last paging', async () => {
        const names = ['v10', 'latest', 'v2', '1.0', 'V3', 'v1'];
        for (const t of names) await store.putTag('r/page', t, tagRec(d(t)));
        const sorted = ['1.0', 'V3', 'latest', 'v1', 'v10', 'v2'];
        assert.deepEqual(await store.listTags('r/page'), { items: sorted });
        const p1 = await store.listTags('r/page', 2);
        assert.deepEqual(p1, { items: ['1.0', 'V3'], next: 'V3' });
        const p2 = await store.listTags('r/page', 2, p1.next);
        assert.deepEqual(p2, { items: ['latest', 'v1'], next: 'v1' });
        const p3 = await store.listTags('r/page', 2, p2.next);
        assert.deepEqual(p3, { items: ['v10', 'v2'] }, 'no next on the last page');
        assert.deepEqual(await store.listTags('r/page', 10, 'v2'), { items: [] });
        assert.deepEqual(await store.listTags('r/page', undefined, 'u'), { items: ['v1', 'v10', 'v2'] });
        assert.deepEqual(await store.listTags('r/page', 3, 'latesz'), { items: ['v1', 'v10', 'v2'] }, 'last need not exist');
        assert.deepEqual(await store.listTags('r/none'), { items: [] });
      });

      it('tagsOf lists the tags pointing at a digest', async () => {
        await store.putTag('r/of', 'a', tagRec(d('x')));
        await store.putTag('r/of', 'c', tagRec(d('x')));
        await store.putTag('r/of', 'b', tagRec(d('y')));
        await store.putTag('r/other', 'z', tagRec(d('x')));
        assert.deepEqual(await store.tagsOf('r/of', d('x')), ['a', 'c']);
        await store.putTag('r/of', 'c', tagRec(d('y')));
        assert.deepEqual(await store.tagsOf('r/of', d('x')), ['a']);
        assert.deepEqual(await store.tagsOf('r/of', d('nothing')), []);
      });
    });

    describe('repositories', () => {
      before(fresh);
      after(done);

      it('markRepo creates and merges flags', async () => {
        assert.equal(await store.getRepo('docker.io/library/alpine'), undefined);
        await store.markRepo('docker.io/library/alpine', { mirrored: true });
        assert.deepEqual(await store.getRepo('docker.io/library/alpine'), { local: false, mirrored: true });
        await store.markRepo('docker.io/library/alpine', { local: true });
        assert.deepEqual(await store.getRepo('docker.io/library/alpine'), { local: true, mirrored: true });
        await store.markRepo('docker.io/library/alpine', {});
        assert.deepEqual(await store.getRepo('docker.io/library/alpine'), { local: true, mirrored: true });
        await store.markRepo('docker.io/library/alpine', { mirrored: false });
        assert.deepEqual(await store.getRepo('docker.io/library/alpine'), { local: true, mirrored: false });
      });

      it('lists repositories lexically with paging', async () => {
        for (const r of ['ghcr.io/b/x', 'docker.io/library/alpine', 'docker.io/library/busybox', 'local/app', 'docker.io/a'])
          await store.markRepo(r, { mirrored: true });
        const all = ['docker.io/a', 'docker.io/library/alpine', 'docker.io/library/busybox', 'ghcr.io/b/x', 'local/app'];
        assert.deepEqual(await store.listRepos(), { items: all });
        const p1 = await store.listRepos(3);
        assert.deepEqual(p1, { items: all.slice(0, 3), next: all[2] });
        assert.deepEqual(await store.listRepos(3, p1.next), { items: all.slice(3) });
        assert.deepEqual(await store.listRepos(undefined, 'ghcr.io'), { items: ['ghcr.io/b/x', 'local/app'] });
      });
    });

    describe('links and referrers', () => {
      before(fresh);
      after(done);

      it('link, getLink, unlink per repository', async () => {
        await store.link('r/a', d('blob1'), blobLink(10));
        assert.deepEqual(await store.getLink('r/a', d('blob1')), blobLink(10));
        assert.equal(await store.getLink('r/b', d('blob1')), undefined, 'a digest alone opens nothing');
        const m = manifestLink(undefined, { refs: [d('blob1')], annotations: { a: 'b' }, artifactType: 'x/y' });
        await store.link('r/a', d('man1'), m);
        assert.deepEqual(await store.getLink('r/a', d('man1')), m);
        assert.equal(await store.unlink('r/a', d('blob1')), true);
        assert.equal(await store.unlink('r/a', d('blob1')), false);
        assert.equal(await store.getLink('r/a', d('blob1')), undefined);
      });

      it('a link whose annotations are not string → string (as older versions stored them) reads back without them', async () => {
        let nested: unknown = 'x';
        for (let i = 0; i < 1000; i++) nested = { a: nested };
        const subj = d('odd-subject');
        for (const [name, annotations] of [['deep', { k: nested }], ['number', { k: 1 }], ['array', ['a']]] as const) {
          await store.link('r/odd', d(name), manifestLink(subj, { annotations: annotations as unknown as Record<string, string> }));
        }
        const plain = manifestLink(subj);
        for (const name of ['deep', 'number', 'array']) assert.deepEqual(await store.getLink('r/odd', d(name)), plain, name);
        assert.deepEqual((await store.referrers('r/odd', subj)).map((x) => x.link), [plain, plain, plain]);
        assert.deepEqual((await store.linksOf(d('deep'))).map((x) => x.link), [plain]);
        for await (const l of store.allLinks()) if (l.repo === 'r/odd') assert.deepEqual(l.link, plain);
        for (const name of ['deep', 'number', 'array']) await store.unlink('r/odd', d(name));
      });

      it('referrers lists the manifests of one repository whose subject matches', async () => {
        const subj = d('subject');
        const sig = manifestLink(subj, { artifactType: 'application/vnd.dev.cosign' });
        const sbom = manifestLink(subj, { artifactType: 'application/spdx+json', annotations: { k: 'v' } });
        await store.link('r/ref', d('sig'), sig);
        await store.link('r/ref', d('sbom'), sbom);
        await store.link('r/ref', d('unrelated'), manifestLink(d('other')));
        await store.link('r/ref', d('plain'), manifestLink());
        await store.link('r/elsewhere', d('sig2'), manifestLink(subj));
        const got = await store.referrers('r/ref', subj);
        const byDigest = new Map(got.map((x) => [x.digest, x.link]));
        assert.equal(got.length, 2);
        assert.deepEqual(byDigest.get(d('sig')), sig);
        assert.deepEqual(byDigest.get(d('sbom')), sbom);
        await store.unlink('r/ref', d('sig'));
        assert.deepEqual((await store.referrers('r/ref', subj)).map((x) => x.digest), [d('sbom')]);
        assert.deepEqual(await store.referrers('r/ref', d('no-such-subject')), []);
      });

      it('linksOf lists every repository a digest is linked into', async () => {
        const shared = d('shared-layer');
        await store.link('r/one', shared, blobLink(7));
        await store.link('r/two', shared, { ...blobLink(7), origin: 'local' });
        const got = (await store.linksOf(shared)).sort((a, b) => (a.repo < b.repo ? -1 : 1));
        assert.deepEqual(got, [
          { repo: 'r/one', link: blobLink(7) },
          { repo: 'r/two', link: { ...blobLink(7), origin: 'local' } },
        ]);
        await store.unlink('r/one', shared);
        assert.deepEqual((await store.linksOf(shared)).map((x) => x.repo), ['r/two']);
        assert.deepEqual(await store.linksOf(d('never')), []);
      });

      it('allLinks yields every link of every repository', async () => {
        const got = await collect(store.allLinks());
        const keys = got.map((x) => `${x.repo} ${x.digest}`).sort();
        const expected = [
          ['r/a', 'man1'],
          ['r/ref', 'sbom'],
          ['r/ref', 'unrelated'],
          ['r/ref', 'plain'],
          ['r/elsewhere', 'sig2'],
          ['r/two', 'shared-layer'],
        ].map(([r, s]) => `${r} ${d(s as string)}`).sort();
        assert.deepEqual(keys, expected);
        const one = got.find((x) => x.repo === 'r/two');
        assert.deepEqual(one?.link, { ...blobLink(7), origin: 'local' });
      });
    });

    describe('uploads', () => {
      before(fresh);
      after(done);
      const up = (id: string, size = 0): UploadRecord => ({ id, repo: 'r/up', writerId: `w${id}`, size, startedAt: 100, updatedAt: 100 });

      it('create, get, list and delete', async () => {
        await store.createUpload(up('u1'));
        await store.createUpload(up('u2', 5));
        assert.deepEqual(await store.getUpload('u1'), up('u1'));
        assert.equal(await store.getUpload('nope'), undefined);
        const ids = (await collect(store.listUploads())).map((u) => u.id).sort();
        assert.deepEqual(ids, ['u1', 'u2']);
        assert.equal(await store.deleteUpload('u2'), true);
        assert.equal(await store.deleteUpload('u2'), false);
        assert.deepEqual((await collect(store.listUploads())).map((u) => u.id), ['u1']);
      });

      it('advanceUpload is a compare-and-set on the size', async () => {
        assert.equal(await store.advanceUpload('u1', 0, 100, 200), true);
        assert.deepEqual(await store.getUpload('u1'), { ...up('u1', 100), updatedAt: 200 });
        assert.equal(await store.advanceUpload('u1', 0, 50, 300), false, 'stale expected size loses');
        assert.deepEqual(await store.getUpload('u1'), { ...up('u1', 100), updatedAt: 200 });
        assert.equal(await store.advanceUpload('missing', 0, 1, 1), false);
        const race = await Promise.all([store.advanceUpload('u1', 100, 150, 400), store.advanceUpload('u1', 100, 160, 401)]);
        assert.deepEqual(race.sort(), [false, true], 'exactly one concurrent PATCH wins');
      });
    });

    describe('access times', () => {
      before(fresh);
      after(done);

      it('keeps the max of old and new, and forgets', async () => {
        const a = d('a');
        const b = d('b');
        assert.equal(await store.lastAccess(a), undefined);
        await store.recordAccess(new Map([[a, 1000], [b, 500]]));
        await store.recordAccess(new Map([[a, 900]]));
        assert.equal(await store.lastAccess(a), 1000, 'an older time never moves it back');
        await store.recordAccess(new Map([[a, 2000]]));
        assert.equal(await store.lastAccess(a), 2000);
        assert.equal(await store.lastAccess(b), 500);
        await store.recordAccess(new Map());
        await store.forgetAccess(a);
        assert.equal(await store.lastAccess(a), undefined);
        await store.forgetAccess(a);
      });
    });

    describe('shared state', () => {
      before(fresh);
      after(done);

      it('returns a value until its ttl passes', async () => {
        assert.equal(await store.getState('k'), undefined);
        await store.setState('k', 'v1', 60_000);
        assert.equal(await store.getState('k'), 'v1');
        await store.setState('k', 'v2', 60_000);
        assert.equal(await store.getState('k'), 'v2');
        await store.setState('short', 'x', 100);
        assert.equal(await store.getState('short'), 'x');
        clock.advance(250);
        await new Promise((r) => setTimeout(r, 250)); // real time too, for stores whose ttl is server-side
        assert.equal(await store.getState('short'), undefined);
        assert.equal(await store.getState('k'), 'v2');
      });

      it('claimState: the first value stays until its ttl passes; later claims get it back', async () => {
        assert.equal(await store.claimState('c', 'first', 60_000), 'first');
        assert.equal(await store.claimState('c', 'second', 60_000), 'first');
        assert.equal(await store.getState('c'), 'first');
        await store.claimState('cshort', 'x', 100);
        clock.advance(250);
        await new Promise((r) => setTimeout(r, 250));
        assert.equal(await store.claimState('cshort', 'y', 60_000), 'y');
      });
    });

    describe('pull counts', () => {
      before(fresh);
      after(done);

      it('adds counts per bucket and sums the buckets asked for', async () => {
        assert.deepEqual(await store.pullCounts(['m:1']), new Map());
        await store.countPulls('m:1', new Map([['hub/library/alpine', 2], ['apps/web', 1]]), 60_000, 100);
        await store.countPulls('m:1', new Map([['hub/library/alpine', 3]]), 60_000, 100);
        await store.countPulls('m:2', new Map([['apps/web', 4]]), 60_000, 100);
        await store.countPulls('m:2', new Map(), 60_000, 100);
        assert.deepEqual(await store.pullCounts(['m:1']), new Map([['hub/library/alpine', 5], ['apps/web', 1]]));
        assert.deepEqual(
          await store.pullCounts(['m:1', 'm:2', 'm:3', 'm:2']),
          new Map([['hub/library/alpine', 5], ['apps/web', 5]]),
          'a missing bucket adds nothing; a bucket named twice counts once',
        );
      });

      it('keeps at most `cap` names in a bucket, still counting those it holds', async () => {
        await store.countPulls('cap', new Map([['a', 1], ['b', 1]]), 60_000, 2);
        await store.countPulls('cap', new Map([['c', 7], ['a', 1]]), 60_000, 2);
        assert.deepEqual(await store.pullCounts(['cap']), new Map([['a', 2], ['b', 1]]));
      });

      it('a bucket goes when its ttl (from the first write) has passed', async () => {
        await store.countPulls('short', new Map([['x', 1]]), 100, 10);
        await store.countPulls('long', new Map([['x', 1]]), 60_000, 10);
        clock.advance(250);
        await new Promise((r) => setTimeout(r, 250)); // real time too, for stores whose ttl is server-side
        assert.deepEqual(await store.pullCounts(['short', 'long']), new Map([['x', 1]]));
      });
    });

    describe('lifecycle', () => {
      before(fresh);
      after(done);
      it('ping resolves', async () => {
        await store.ping();
        assert.ok(store.kind === 'embedded' || store.kind === 'redis');
      });

      it('data survives reopen (restart)', async (t) => {
        if (!subject.reopen) return t.skip('this implementation has no reopen');
        const subj = d('persist-subject');
        await store.putTag('p/r', 'v1', tagRec(d('pm')));
        await store.putTag('p/r', 'gone', tagRec(d('pm')));
        await store.deleteTag('p/r', 'gone');
        await store.markRepo('p/r', { local: true });
        await store.link('p/r', d('pm'), manifestLink(subj, { refs: [d('pl')] }));
        await store.link('p/r', d('pl'), blobLink(3));
        await store.createUpload({ id: 'pu', repo: 'p/r', writerId: 'pw', size: 0, startedAt: 1, updatedAt: 1 });
        await store.advanceUpload('pu', 0, 42, 9);
        await store.recordAccess(new Map([[d('pl'), 777]]));
        await store.setState('sk', 'sv', 60_000);
        store = await subject.reopen();
        assert.deepEqual(await store.getTag('p/r', 'v1'), tagRec(d('pm')));
        assert.equal(await store.getTag('p/r', 'gone'), undefined);
        assert.deepEqual(await store.listTags('p/r'), { items: ['v1'] });
        assert.deepEqual(await store.getRepo('p/r'), { local: true, mirrored: false });
        assert.deepEqual((await store.listRepos()).items, ['p/r']);
        assert.deepEqual(await store.getLink('p/r', d('pm')), manifestLink(subj, { refs: [d('pl')] }));
        assert.deepEqual((await store.referrers('p/r', subj)).map((x) => x.digest), [d('pm')]);
        assert.deepEqual((await store.linksOf(d('pl'))).map((x) => x.repo), ['p/r']);
        assert.equal((await store.getUpload('pu'))?.size, 42);
        assert.equal(await store.lastAccess(d('pl')), 777);
        assert.equal(await store.getState('sk'), 'sv');
      });
    });
  });
}
