/**
 * Follow mode: the list stays on the newest record until the user scrolls up or pauses it, then counts
 * what arrives ("N new — jump to latest") until Follow, End or that button brings it back.
 */
import { toolButton } from './format';
import type { VirtualRows } from './virtual';

/** What follow mode needs from the viewer it sits in. */
export interface FollowHost {
  readonly list: VirtualRows;
  /** Bring the list up to date with the records that arrived since the last frame. */
  flush(): void;
}

export class FollowMode {
  following = true;
  /** Records that arrived since follow mode paused. */
  newWhilePaused = 0;
  /** The toolbar's Follow button, pressed while following. */
  readonly button: HTMLButtonElement;
  /** The "N new — jump to latest" button over the list, shown while paused once records arrive. */
  readonly latest: HTMLButtonElement;
  private programmaticScroll = 0;

  constructor(doc: Document, signal: AbortSignal, private readonly host: FollowHost) {
    this.button = toolButton(doc, 'Follow', 'Follow newest records', () => (this.following ? this.pause() : this.jumpToLatest()), signal);
    this.button.setAttribute('aria-pressed', 'true');
    this.latest = toolButton(doc, '', 'Jump to latest', () => this.jumpToLatest(), signal);
    this.latest.className = 'ntl-latest';
    this.latest.hidden = true;
  }

  /** The list is about to scroll by itself (to the end, as it follows): its scroll events are not the user's. */
  expectScroll(): void {
    this.programmaticScroll = Date.now();
  }

  /** On the list's scroll: at the end it follows again, scrolled away from it (by the user) it pauses. */
  onScroll(): void {
    if (Date.now() - this.programmaticScroll < 150) return;
    if (this.host.list.isAtEnd(8)) {
      if (!this.following) this.setFollowing(true);
    } else if (this.following) this.pause();
  }

  pause(): void {
    if (!this.following) return;
    this.setFollowing(false);
  }

  jumpToLatest(): void {
    this.host.flush();
    this.setFollowing(true);
    this.expectScroll();
    this.host.list.scrollToEnd();
  }

  /** Count `added` records that arrived while paused. */
  showNew(added: number): void {
    this.newWhilePaused += added;
    this.latest.hidden = false;
    this.latest.textContent = `${this.newWhilePaused.toLocaleString()} new — jump to latest`;
  }

  private setFollowing(on: boolean): void {
    this.following = on;
    this.button.setAttribute('aria-pressed', String(on));
    if (on) {
      this.newWhilePaused = 0;
      this.latest.hidden = true;
    }
  }
}
