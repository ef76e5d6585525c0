import type { BenchImage } from './images.js';
import type { Server } from './processes.js';
import type { Hub, Target, TargetKind } from './setup.js';

export interface Images {
  big256: BenchImage;
  big1g: BenchImage;
  layers20: BenchImage;
  index: BenchImage;
  /**
   * An unrelated image a mirror pulls (cold) once before a timed cold pull, as a mirror in service has pulled
   * images before: a few requests leave the cold path's code unoptimised (3 layers: 1.43 s for the 20-layer
   * pull at 100 MB/s; 20 layers: 1.22 s; direct 1.13 s, medians of 3).
   */
  warmup: BenchImage;
}

export interface BenchContext {
  hub: Hub;
  images: Images;
  /** Repetitions of every timed measurement, alternating wharf / Distribution (/ reference). */
  reps: number;
  /** Long-running mirrors for the warm scenarios. */
  warm: Record<TargetKind, Target>;
  /** nginx serving the large layer files from disk; started only for the scenarios that compare with it. */
  nginx: Server | undefined;
  log(msg: string): void;
}

export const MB = 1_000_000;
export { MiB } from './images.js';

/** The image's largest layer. */
export function largest(img: BenchImage): { digest: string; size: number; path?: string } {
  return img.blobs.reduce((a, b) => (b.size > a.size ? b : a));
}
