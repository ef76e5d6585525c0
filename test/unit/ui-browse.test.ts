import assert from 'node:assert/strict';
import { it } from 'node:test';
import { BrowseService } from '../../src/core/browse.js';
import type { Digest } from '../../src/oci/index.js';
import { EmbeddedMetadataStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/tmp.js';

const D = `sha256:${'a'.repeat(64)}` as Digest;
const MEDIA = 'application/vnd.oci.image.manifest.v1+json';

it('the repository list follows a delete at once, even while an older scan is running', async () => {
  const dir = await tempDir('wharf-browse-');
  const meta = await EmbeddedMetadataStore.open(dir.path);
  try {
    let now = 0;
    const ns = { resolve: (n: string) => ({ key: n, path: n }), displayName: (k: string) => k };
    // The first tag read after `hold` is set waits for `release`: an older scan that has read a tag, paused.
    let hold = false;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const gated = new Proxy(meta, {
      get(target, prop) {
        if (prop === 'getTag') {
          return async (repo: string, tag: string) => {
            const rec = await target.getTag(repo, tag);
            if (hold) {
              hold = false;
              await held;
            }
            return rec;
          };
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const browser = new BrowseService({ store: { read: async () => undefined }, meta: gated, namespaces: ns, now: () => now, staleAfterMs: 0 });
    await meta.markRepo('a/b', { local: true });
    await meta.link('a/b', D, { kind: 'manifest', size: 10, origin: 'local', mediaType: MEDIA, linkedAt: 0 });
    await meta.putTag('a/b', 't', { digest: D, mediaType: MEDIA, size: 10, checkedAt: 0, origin: 'local' });
    assert.deepEqual((await browser.repositories())[0]!.tags.map((t) => t.tag), ['t']);
    // A scan starts (the snapshot is old), then a delete lands and invalidates.
    now = 60_000;
    hold = true;
    const older = browser.repositories();
    while (hold) await new Promise((r) => setImmediate(r));
    await meta.deleteTag('a/b', 't');
    browser.invalidate();
    const after = browser.repositories();
    const result = await Promise.race([after, new Promise<'joined the older scan'>((r) => setTimeout(() => r('joined the older scan'), 2000))]);
    release();
    await older;
    assert.notEqual(result, 'joined the older scan');
    const list = await after;
    assert.deepEqual(list[0]!.tags, []);
    assert.equal(list[0]!.bytes, 0);
  } finally {
    await meta.close();
    await dir.cleanup();
  }
});
