/**
 * Limits, sizes and defaults of the file-transfer system, in one place.
 */

/** The four bytes every framed transfer starts with, both ways: "SKFT" (socketkit file transfer). */
export const TRANSFER_MAGIC = 'SKFT';

/**
 * The highest version of the framed transfer protocol this build speaks. Each side announces its
 * own in its hello; both then use the lower of the two, and a side that does not speak that
 * version refuses with `ERR_TRANSFER_VERSION`. Version 2 agrees on the hash in the hello
 * (SHA-256 or XXH3-128); version 1 always uses SHA-256.
 */
export const TRANSFER_PROTOCOL_VERSION = 2;

/** The lowest version this build still speaks (to an older peer). */
export const MIN_TRANSFER_PROTOCOL_VERSION = 1;

/**
 * Bytes of file data per read and per data frame: 1 MiB. Large enough that per-chunk costs
 * (a frame header, a hash update, a write call, a promise) vanish next to copying and hashing
 * the bytes; small enough that a few of them in flight bound the memory of a connection.
 */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/** Buffers of {@link DEFAULT_CHUNK_SIZE} a sender keeps in flight per file: reads ahead while earlier chunks are written. */
export const DEFAULT_READ_AHEAD = 4;

/** No progress for this long fails the transfer with `ERR_STALLED`, milliseconds. */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * Offers a sender keeps ahead of the file it is streaming, so that a tree of many small files
 * costs one round trip, not one per file.
 */
export const DEFAULT_OFFER_WINDOW = 64;

/**
 * What ends a file's name while it is incomplete or unverified: `NAME` is written as
 * `.NAME.sk-partial` (see `partialPath` in place.ts), a name no user file has by accident.
 */
export const PART_SUFFIX = '.sk-partial';

/** Received bytes a connection queues for its consumer before it pauses the socket (and TCP slows the sender). */
export const DEFAULT_RECEIVE_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * Messages a connection queues for its consumer before it stops reading. With the byte limit,
 * this bounds a queue of tiny messages (a flood of OFFERs or of 5-byte frames).
 */
export const DEFAULT_RECEIVE_QUEUE_MESSAGES = 1024;

/**
 * What one queued message is counted as besides its frame bytes: the objects that hold it (the
 * parsed message, its queue entry, a path string). An estimate on the high side.
 */
export const QUEUED_MESSAGE_OVERHEAD = 256;

/**
 * Files a receiver accepts ahead of the one being streamed (the sender's window, 64, and the
 * file whose BEGIN is next): an OFFER beyond them is a protocol error.
 */
export const MAX_OFFERS_AHEAD = 64;

/** Bytes a file sink queues or has in flight before its writer must wait. */
export const DEFAULT_SINK_HIGH_WATER = 8 * 1024 * 1024;

/**
 * Bytes per buffer of a receiver's overlapped writer (see `OverlapFileSink`): the chunk it
 * hands to the thread pool in one write while the next ones are hashed.
 */
export const DEFAULT_WRITE_BUFFER_SIZE = 2 * 1024 * 1024;

/**
 * Buffers of {@link DEFAULT_WRITE_BUFFER_SIZE} an overlapped writer keeps: 10 MiB, up to three
 * waiting for their write, one filling, and one spare for the rest of a read past the limit.
 */
export const DEFAULT_WRITE_BUFFERS = 5;

/** Finalisations (flush, fsync, verify, rename) a receiver runs at once while it receives the next files. */
export const DEFAULT_FINALIZE_CONCURRENCY = 4;

/** The largest control message (JSON) accepted: 64 KiB, far above any real offer. */
export const MAX_CONTROL_BYTES = 64 * 1024;

/** The longest relative path accepted on the wire, in UTF-8 bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

/** The longest single path component accepted on the wire, in UTF-8 bytes (NAME_MAX). */
export const MAX_NAME_BYTES = 255;

/** With parallel streams (`-P N`), files larger than this are split into ranges of this size by default: 64 MiB. */
export const DEFAULT_RANGE_SIZE = 64 * 1024 * 1024;

/** The smallest range size a sender accepts from a client's hello (a smaller one is raised to it). */
export const MIN_RANGE_SIZE = 64 * 1024;

/** The largest range size a sender accepts from a client's hello (a larger one is lowered to it). */
export const MAX_RANGE_SIZE = 1024 * 1024 * 1024;

/** The most connections one parallel transfer may use. */
export const MAX_STREAMS = 64;
