import { ErrorCode, RegistryError, repoMatcher, type Digest } from '../oci/index.js';
import type { Namespaces, RepoRef } from './types.js';

interface Rule {
  pattern: string;
  repo: (name: string) => boolean;
  tag: (tag: string) => boolean;
}

/**
 * `push.immutableTags`: `<repository>:<tag>` globs (the push.overlay syntax on each side: `*` within a path
 * component, `**` across). A matching tag, once it exists, never points at another digest and is never
 * deleted, nor is the manifest it points at. Repositories match by canonical name or key, like access rules.
 */
export class ImmutableTags {
  private readonly rules: Rule[];

  constructor(
    patterns: readonly string[],
    private readonly namespaces: Pick<Namespaces, 'displayName'>,
  ) {
    this.rules = patterns.map((pattern) => {
      const i = pattern.lastIndexOf(':');
      return { pattern, repo: repoMatcher([pattern.slice(0, i)]), tag: repoMatcher([pattern.slice(i + 1)]) };
    });
  }

  /** The first rule making `repo:tag` immutable. */
  rule(repo: RepoRef, tag: string): string | undefined {
    if (this.rules.length === 0) return undefined;
    const names = [this.namespaces.displayName(repo.key), repo.key];
    return this.rules.find((r) => r.tag(tag) && names.some((n) => r.repo(n)))?.pattern;
  }

  /** Refuses a push that would move an immutable tag from `current` to `next` (the same digest again is fine). */
  assertMayPoint(repo: RepoRef, tag: string, current: Digest | undefined, next: Digest): void {
    if (current === undefined || current === next) return;
    const rule = this.rule(repo, tag);
    if (rule) throw this.denied(repo, tag, rule, `tag ${tag} is immutable (push.immutableTags rule "${rule}"); it stays at ${current}`);
  }

  /** Refuses deleting a tag, or a manifest some of whose tags are immutable. */
  assertMayDelete(repo: RepoRef, tags: readonly string[], what: string): void {
    for (const tag of tags) {
      const rule = this.rule(repo, tag);
      if (rule) throw this.denied(repo, tag, rule, `${what} is protected: tag ${tag} is immutable (push.immutableTags rule "${rule}")`);
    }
  }

  private denied(repo: RepoRef, tag: string, rule: string, message: string): RegistryError {
    return new RegistryError(ErrorCode.DENIED, message, { detail: { repository: this.namespaces.displayName(repo.key), tag, rule } });
  }
}
