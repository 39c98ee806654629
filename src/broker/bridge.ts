/**
 * What joins broker instances: a bridge publishes what local clients send and hands over what
 * the other instances published. The broker knows nothing of how (redis.ts is the one that
 * ships); tests and other transports implement the same methods.
 *
 * A bridge never blocks the broker: `publish` queues (bounded) and returns; when the link to
 * the other instances is down the instance keeps serving its own clients. A bridge whose
 * backlog is high says so (`publish` returns false, then calls the `onDrain` listener once it
 * is low again), and the broker holds its senders back for a bounded time, as for a client.
 * The same holds when another instance has not taken what is on its way to it (see `setWindow`).
 */
export interface BrokerBridge {
  /**
   * Sends bytes to the other instances (not back to this one). False: the backlog is above the
   * bridge's mark (what it is given is still taken, up to its bound); `onDrain`'s listener is
   * called when it is below again.
   */
  publish(data: Uint8Array): boolean | void;
  /** Called once the backlog is low again after `publish` returned false. Set once, by the broker. */
  onDrain?(listener: () => void): void;
  /**
   * This instance holds its senders back while one of its clients catches up (`true`), or no
   * longer does (`false`): the bridge then lets the other instances send no more than is on its
   * way already (its window), so that a client here that keeps up is not overrun from elsewhere.
   */
  hold?(on: boolean): void;
  /**
   * Flow control, set once by the broker. `window`: the most bytes from each other instance
   * that may be on their way here beyond what was handed to `subscribe`'s listener (the others
   * stop publishing past it). `holdMs`: how long this instance waits for another that lets it
   * send no more before it stops waiting for that one (until it catches up); 0: never waits.
   */
  setFlow?(flow: { readonly window: number; readonly holdMs: number }): void;
  /** Called with what the other instances published. Set once, by the broker. */
  subscribe(onData: (data: Buffer) => void): void;
  /** Leaves the other instances. */
  close(): Promise<void>;
}

/**
 * Names and rooms shared by every chat instance: a name is unique across all of them and `/who`
 * lists everyone in a room, wherever they are connected.
 */
export interface ChatDirectory {
  /** The next automatic name's number (user1, user2, ...), never reused while the directory lives. */
  nextUserNumber(): Promise<number>;
  /** Takes `name` (case-insensitive) for `owner`; false when someone has it. */
  claim(name: string, owner: string): Promise<boolean>;
  /** Gives `name` back. */
  release(name: string): Promise<void>;
  /** Puts `name` in `room` (out of every other room). */
  enter(room: string, name: string): Promise<void>;
  /** Takes `name` out of `room`. */
  leave(room: string, name: string): Promise<void>;
  /** Everyone in `room`, sorted. */
  members(room: string): Promise<string[]>;
}

/** The directory of a single instance: everything in this process. */
export class LocalChatDirectory implements ChatDirectory {
  #next = 1;
  readonly #names = new Map<string, string>();
  readonly #rooms = new Map<string, Set<string>>();

  nextUserNumber(): Promise<number> {
    return Promise.resolve(this.#next++);
  }

  claim(name: string, owner: string): Promise<boolean> {
    const key = name.toLowerCase();
    if (this.#names.has(key)) return Promise.resolve(false);
    this.#names.set(key, owner);
    return Promise.resolve(true);
  }

  release(name: string): Promise<void> {
    this.#names.delete(name.toLowerCase());
    return Promise.resolve();
  }

  enter(room: string, name: string): Promise<void> {
    let set = this.#rooms.get(room);
    if (set === undefined) this.#rooms.set(room, (set = new Set()));
    set.add(name);
    return Promise.resolve();
  }

  leave(room: string, name: string): Promise<void> {
    const set = this.#rooms.get(room);
    set?.delete(name);
    if (set?.size === 0) this.#rooms.delete(room);
    return Promise.resolve();
  }

  members(room: string): Promise<string[]> {
    return Promise.resolve([...(this.#rooms.get(room) ?? [])].sort());
  }
}
