import type { Digest } from '../../oci/index.js';
import type { LinkRecord, RepoRecord, TagRecord, UploadRecord } from '../types.js';
import { storedLink } from './link-record.js';
import { lexCompare } from './paging.js';

/**
 * One journal line. Every op sets an absolute value or deletes, so replaying a journal over a snapshot that
 * already contains it gives the same state (compaction needs no fencing between snapshot and truncate).
 */
export type Op =
  | { op: 'tag'; r: string; t: string; v: TagRecord }
  | { op: 'untag'; r: string; t: string }
  | { op: 'repo'; r: string; v: RepoRecord }
  | { op: 'link'; r: string; d: Digest; v: LinkRecord }
  | { op: 'unlink'; r: string; d: Digest }
  | { op: 'upload'; v: UploadRecord }
  | { op: 'unupload'; id: string }
  | { op: 'access'; m: Array<[Digest, number]> }
  | { op: 'unaccess'; d: Digest }
  | { op: 'state'; k: string; v: string; exp: number };

export interface Snapshot {
  version: 1;
  repos: Array<[string, RepoRecord]>;
  tags: Array<[string, Array<[string, TagRecord]>]>;
  links: Array<[string, Array<[Digest, LinkRecord]>]>;
  uploads: UploadRecord[];
  access: Array<[Digest, number]>;
  state: Array<[string, { v: string; exp: number }]>;
}

/** The whole embedded metadata set in maps, plus the derived indexes reads need. */
export class MemoryState {
  readonly repos = new Map<string, RepoRecord>();
  readonly tags = new Map<string, Map<string, TagRecord>>();
  readonly links = new Map<string, Map<Digest, LinkRecord>>();
  readonly digestRepos = new Map<Digest, Set<string>>();
  readonly uploads = new Map<string, UploadRecord>();
  readonly access = new Map<Digest, number>();
  readonly state = new Map<string, { v: string; exp: number }>();
  private sortedRepos: string[] | undefined;
  private readonly sortedTags = new Map<string, string[]>();

  apply(o: Op): void {
    switch (o.op) {
      case 'tag': {
        let m = this.tags.get(o.r);
        if (!m) this.tags.set(o.r, (m = new Map()));
        if (!m.has(o.t)) this.sortedTags.delete(o.r);
        m.set(o.t, o.v);
        break;
      }
      case 'untag': {
        const m = this.tags.get(o.r);
        if (m?.delete(o.t)) {
          this.sortedTags.delete(o.r);
          if (m.size === 0) this.tags.delete(o.r);
        }
        break;
      }
      case 'repo':
        if (!this.repos.has(o.r)) this.sortedRepos = undefined;
        this.repos.set(o.r, o.v);
        break;
      case 'link': {
        let m = this.links.get(o.r);
        if (!m) this.links.set(o.r, (m = new Map()));
        m.set(o.d, storedLink(o.v));
        let s = this.digestRepos.get(o.d);
        if (!s) this.digestRepos.set(o.d, (s = new Set()));
        s.add(o.r);
        break;
      }
      case 'unlink': {
        const m = this.links.get(o.r);
        if (m?.delete(o.d) && m.size === 0) this.links.delete(o.r);
        const s = this.digestRepos.get(o.d);
        if (s?.delete(o.r) && s.size === 0) this.digestRepos.delete(o.d);
        break;
      }
      case 'upload':
        this.uploads.set(o.v.id, o.v);
        break;
      case 'unupload':
        this.uploads.delete(o.id);
        break;
      case 'access':
        for (const [d, t] of o.m) {
          const cur = this.access.get(d);
          if (cur === undefined || t > cur) this.access.set(d, t);
        }
        break;
      case 'unaccess':
        this.access.delete(o.d);
        break;
      case 'state':
        this.state.set(o.k, { v: o.v, exp: o.exp });
        break;
    }
  }

  /**
   * Applies `o` and returns what puts the state back exactly as it was before it. Undoing several ops in
   * reverse order of their applying restores the state before the first.
   */
  applyUndoable(o: Op): () => void {
    const undo = this.undoOf(o);
    this.apply(o);
    return undo;
  }

  private undoOf(o: Op): () => void {
    switch (o.op) {
      case 'tag':
      case 'untag': {
        const prev = this.tags.get(o.r)?.get(o.t);
        return () => this.apply(prev ? { op: 'tag', r: o.r, t: o.t, v: prev } : { op: 'untag', r: o.r, t: o.t });
      }
      case 'repo': {
        const prev = this.repos.get(o.r);
        return () => {
          if (prev) return this.apply({ op: 'repo', r: o.r, v: prev });
          if (this.repos.delete(o.r)) this.sortedRepos = undefined;
        };
      }
      case 'link':
      case 'unlink': {
        const prev = this.links.get(o.r)?.get(o.d);
        return () => this.apply(prev ? { op: 'link', r: o.r, d: o.d, v: prev } : { op: 'unlink', r: o.r, d: o.d });
      }
      case 'upload':
      case 'unupload': {
        const id = o.op === 'upload' ? o.v.id : o.id;
        const prev = this.uploads.get(id);
        return () => this.apply(prev ? { op: 'upload', v: prev } : { op: 'unupload', id });
      }
      case 'access':
      case 'unaccess': {
        const prev = (o.op === 'access' ? o.m.map(([d]) => d) : [o.d]).map((d) => [d, this.access.get(d)] as const);
        return () => {
          for (const [d, t] of prev.reverse()) {
            if (t === undefined) this.access.delete(d);
            else this.access.set(d, t);
          }
        };
      }
      case 'state': {
        const prev = this.state.get(o.k);
        return () => {
          if (prev) this.state.set(o.k, prev);
          else this.state.delete(o.k);
        };
      }
    }
  }

  repoNames(): string[] {
    return (this.sortedRepos ??= [...this.repos.keys()].sort(lexCompare));
  }

  tagNames(repo: string): string[] {
    let s = this.sortedTags.get(repo);
    if (!s) {
      s = [...(this.tags.get(repo)?.keys() ?? [])].sort(lexCompare);
      this.sortedTags.set(repo, s);
    }
    return s;
  }

  snapshot(now: number): Snapshot {
    return {
      version: 1,
      repos: [...this.repos],
      tags: [...this.tags].map(([r, m]) => [r, [...m]]),
      links: [...this.links].map(([r, m]) => [r, [...m]]),
      uploads: [...this.uploads.values()],
      access: [...this.access],
      state: [...this.state].filter(([, e]) => e.exp > now),
    };
  }

  load(s: Snapshot): void {
    for (const [r, v] of s.repos) this.apply({ op: 'repo', r, v });
    for (const [r, tags] of s.tags) for (const [t, v] of tags) this.apply({ op: 'tag', r, t, v });
    for (const [r, links] of s.links) for (const [d, v] of links) this.apply({ op: 'link', r, d, v });
    for (const v of s.uploads) this.apply({ op: 'upload', v });
    this.apply({ op: 'access', m: s.access });
    for (const [k, e] of s.state) this.apply({ op: 'state', k, v: e.v, exp: e.exp });
  }
}
