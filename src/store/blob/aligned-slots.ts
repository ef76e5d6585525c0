/** WebAssembly memory grows in pages of this size, and each memory is mapped on its own pages. */
const WASM_PAGE = 64 * 1024;

/**
 * Page-aligned scratch buffers for writes that bypass the page cache (O_DIRECT), which the kernel accepts
 * only from memory aligned to the device's block size. Node cannot align a Buffer, but a WebAssembly memory
 * is a mapping of its own, so slices of it at multiples of the page size are page-aligned.
 *
 * Slots are reused, never freed: a freed buffer's pages go back to the kernel (and, on a VM with free page
 * reporting, to the host), and touching new ones costs more than the copy they are used for.
 */
export class AlignedSlots {
  private readonly free: Buffer[] = [];
  private arenas = 0;
  private exhausted = false;

  constructor(
    readonly slotBytes: number,
    private readonly slotsPerArena = 8,
    private readonly maxArenas = 8,
  ) {
    if (slotBytes <= 0 || slotBytes % WASM_PAGE !== 0) throw new Error(`aligned slots: ${slotBytes} is not a multiple of ${WASM_PAGE}`);
  }

  /** A free slot, or undefined when every slot is in use (the caller writes through the page cache instead). */
  take(): Buffer | undefined {
    if (this.free.length === 0) this.grow();
    return this.free.pop();
  }

  give(slot: Buffer): void {
    this.free.push(slot);
  }

  private grow(): void {
    if (this.exhausted || this.arenas >= this.maxArenas) return;
    const pages = (this.slotBytes * this.slotsPerArena) / WASM_PAGE;
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    } catch {
      // Address space limited (ulimit -v) or WebAssembly disabled: the slots we have are all there will be.
      this.exhausted = true;
      return;
    }
    this.arenas++;
    for (let i = 0; i < this.slotsPerArena; i++) this.free.push(Buffer.from(memory.buffer, i * this.slotBytes, this.slotBytes));
  }
}
