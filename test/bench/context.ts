import type { BenchImage } from './images.js';
import type { Server } from './processes.js';
import type { Hub, Target, TargetKind } from './setup.js';

export interface Images {
  big256: BenchImage;
  big1g: BenchImage;
  layers20: BenchImage;
  index: BenchImage;
  /** A small unrelated image a mirror serves once before a timed cold pull, as a running mirror has served traffic before. */
  warmup: BenchImage;
}

export interface BenchContext {
  hub: Hub;
  images: Images;
  /** Repetitions of every timed measurement, alternating wharf / Distribution (/ reference). */
  reps: number;
  /** Long-running mirrors for the warm scenarios. */
  warm: Record<TargetKind, Target>;
  /** nginx serving the large layer files from disk. */
  nginx: Server;
  log(msg: string): void;
}

export const MB = 1_000_000;
export { MiB } from './images.js';

/** The image's largest layer. */
export function largest(img: BenchImage): { digest: string; size: number; path?: string } {
  return img.blobs.reduce((a, b) => (b.size > a.size ? b : a));
}
