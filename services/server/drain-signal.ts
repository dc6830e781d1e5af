// The server's "draining" moment as something a long wait can race against: begun once, when the
// server starts its graceful shutdown, so waiting watches answer at once instead of holding it up.

export class DrainSignal {
  private begun = false;
  private resolve!: () => void;
  readonly promise = new Promise<void>((resolve) => (this.resolve = resolve));

  get done(): boolean {
    return this.begun;
  }

  begin(): void {
    this.begun = true;
    this.resolve();
  }
}
