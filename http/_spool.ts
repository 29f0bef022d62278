/**
 * A run's output on its way to an HTTP answer, in bounded memory: the first
 * bytes stay in memory, the rest goes to a file of the server's spool
 * directory (deleted with the answer), and the JSON answer is written in
 * pieces from there. Holding a whole result in memory let one client's
 * 600 MiB of output add 1.2 GiB to the server, and a JSON answer of two
 * 300 MiB outputs ends the whole server (V8: "Fatal process out of memory").
 *
 * @module
 */

/** Bytes of one stream kept in memory before the spool file takes over. */
export const SPOOL_MEMORY_BYTES = 256 * 1024;

/** Size of each piece read back from a spool file. */
const PIECE = 64 * 1024;

/** One stream's collected output. */
export interface Spooled {
  /** Bytes collected. */
  readonly size: number;
  /** The bytes, in pieces, from memory or the spool file. */
  pieces(): AsyncIterable<Uint8Array>;
  /** Deletes the spool file (idempotent). */
  dispose(): Promise<void>;
}

/**
 * Reads `stream` to its end, spooling to a file in `dir` past `memoryBytes`.
 *
 * @param stream The output (already capped by the run's `outputBytes`).
 * @param dir The server's private spool directory.
 * @param memoryBytes Bytes kept in memory before spooling.
 * @returns The collected output; `dispose()` it when done.
 *
 * @example Usage
 * ```ts
 * import { spool } from "./_spool.ts";
 * const dir = await Deno.makeTempDir();
 * const out = await spool(ReadableStream.from([new Uint8Array(10)]), dir, 4);
 * console.log(out.size); // 10
 * await out.dispose();
 * await Deno.remove(dir);
 * ```
 */
export async function spool(
  stream: ReadableStream<Uint8Array>,
  dir: string,
  memoryBytes: number = SPOOL_MEMORY_BYTES,
): Promise<Spooled> {
  const memory: Uint8Array[] = [];
  let size = 0;
  let file: Deno.FsFile | null = null;
  let path: string | null = null;
  const dispose = async () => {
    const gone = path;
    path = null;
    try {
      file?.close();
    } catch { /* closed */ }
    file = null;
    if (gone) await Deno.remove(gone).catch(() => {});
  };
  try {
    for await (const chunk of stream) {
      size += chunk.length;
      if (file === null && size <= memoryBytes) {
        memory.push(chunk);
        continue;
      }
      if (file === null) {
        path = `${dir}/${crypto.randomUUID()}.out`;
        // createNew: never write through a file someone placed there.
        file = await Deno.open(path, {
          createNew: true,
          write: true,
          read: true,
          mode: 0o600,
        });
        for (const piece of memory.splice(0)) await writeAll(file, piece);
      }
      await writeAll(file, chunk);
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  const spooled = file as Deno.FsFile | null;
  return {
    size,
    async *pieces() {
      yield* memory;
      if (spooled === null) return;
      await spooled.seek(0, Deno.SeekMode.Start);
      const buffer = new Uint8Array(PIECE);
      while (true) {
        const n = await spooled.read(buffer);
        if (n === null) return;
        yield buffer.slice(0, n);
      }
    },
    dispose,
  };
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(bytes.subarray(written));
  }
}

const encoder = new TextEncoder();

/**
 * A run's JSON answer, written in pieces: the status fields, then `stdout`
 * and `stderr` decoded as UTF-8 (invalid bytes replaced) and escaped piece
 * by piece, so no piece is larger than a few times {@linkcode PIECE}. The
 * spool files are deleted when the body ends or the client goes away.
 *
 * @param status The run's status fields (JSON-serialisable).
 * @param stdout The collected stdout.
 * @param stderr The collected stderr.
 * @param onDone Called once when the body has ended or was cancelled.
 * @returns The body.
 *
 * @example Usage
 * ```ts
 * import { resultBody, spool } from "./_spool.ts";
 * const dir = await Deno.makeTempDir();
 * const bytes = (text: string) => ReadableStream.from([new TextEncoder().encode(text)]);
 * const body = resultBody({ exitCode: 0 }, await spool(bytes("hi\n"), dir), await spool(bytes(""), dir), () => {});
 * console.log(await new Response(body).json()); // { exitCode: 0, stdout: "hi\n", stderr: "" }
 * await Deno.remove(dir);
 * ```
 */
export function resultBody(
  status: Record<string, unknown>,
  stdout: Spooled,
  stderr: Spooled,
  onDone: () => void,
): ReadableStream<Uint8Array> {
  let finished = false;
  const finish = async () => {
    if (finished) return;
    finished = true;
    await Promise.all([stdout.dispose(), stderr.dispose()]);
    onDone();
  };
  async function* parts(): AsyncGenerator<Uint8Array> {
    const head = JSON.stringify(status);
    const open = head === "{}" ? "{" : `${head.slice(0, -1)},`;
    yield encoder.encode(`${open}"stdout":"`);
    yield* escaped(stdout);
    yield encoder.encode(`","stderr":"`);
    yield* escaped(stderr);
    yield encoder.encode(`"}`);
  }
  const iterator = parts();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await iterator.next();
        if (done) {
          // Files gone before the client sees the end.
          await finish();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        await finish();
        controller.error(error);
      }
    },
    async cancel() {
      await iterator.return(undefined);
      await finish();
    },
  });
}

/** The output as the inside of a JSON string, piece by piece. */
async function* escaped(output: Spooled): AsyncGenerator<Uint8Array> {
  const decoder = new TextDecoder();
  for await (const piece of output.pieces()) {
    // stream: a character split between pieces is decoded whole.
    const text = decoder.decode(piece, { stream: true });
    if (text) yield encoder.encode(JSON.stringify(text).slice(1, -1));
  }
  const rest = decoder.decode();
  if (rest) yield encoder.encode(JSON.stringify(rest).slice(1, -1));
}
