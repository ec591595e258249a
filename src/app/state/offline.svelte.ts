/**
 * Offline readiness: registers the service worker (src/app/pwa/sw.ts, built to /sw.js) in a
 * build and says when the app, the built-in model and the bundled data are cached, so a speaker can
 * pull the cable. Under the dev server (`import.meta.hot`) there is no service worker.
 */
export class OfflineState {
  online = $state(navigator.onLine);
  /** A service worker controls the page: everything precached is served without the network. */
  ready = $state(false);
  readonly supported = !import.meta.hot && 'serviceWorker' in navigator;

  constructor() {
    // lives as long as the page: no listeners to remove
    window.addEventListener('online', () => (this.online = true));
    window.addEventListener('offline', () => (this.online = false));
  }

  async register(): Promise<void> {
    if (!this.supported) return;
    const sw = navigator.serviceWorker;
    sw.addEventListener('controllerchange', () => (this.ready = sw.controller !== null));
    try {
      await sw.register(`${import.meta.env.BASE_URL}sw.js`, { scope: import.meta.env.BASE_URL });
      await sw.ready;
      this.ready = sw.controller !== null;
    } catch {
      // no service worker (blocked, private mode, file://): the app works online as before
      this.ready = false;
    }
  }
}
