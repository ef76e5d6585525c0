/** One buffer (or one list of buffers, written together) as the async iterable the store's writers consume. */
export async function* single<T extends Uint8Array | readonly Uint8Array[]>(chunk: T): AsyncGenerator<T> {
  yield chunk;
}

/** Passes at most `limit` bytes through; throws the error `tooLarge()` builds once more arrive. */
export async function* capped(src: AsyncIterable<Uint8Array>, limit: number, tooLarge: () => Error): AsyncGenerator<Uint8Array> {
  let seen = 0;
  for await (const chunk of src) {
    seen += chunk.byteLength;
    if (seen > limit) throw tooLarge();
    yield chunk;
  }
}

/** Counts the bytes passing through. */
export async function* counted(src: AsyncIterable<Uint8Array>, onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of src) {
    onBytes(chunk.byteLength);
    yield chunk;
  }
}
