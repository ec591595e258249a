/**
 * Hash routing: `#/solve`, `#/explore`, `#/train`, `#/compare`, `#/models`, so a reload keeps the
 * view and the browser's back button moves between views. No hash (or an unknown one) is Solve.
 * `#/stories` (llama2.c's story model demo) is a page outside the nav, linked from Solve.
 */
export const VIEWS = [
  { id: 'solve', title: 'Solve', key: '1' },
  { id: 'explore', title: 'Explore', key: '2' },
  { id: 'train', title: 'Train', key: '3' },
  { id: 'compare', title: 'Compare', key: '4' },
  { id: 'models', title: 'Models', key: '5' },
] as const;

export type ViewId = (typeof VIEWS)[number]['id'];

/** Pages with a route but no place in the nav (and no number key). */
export const PAGES = ['stories'] as const;

export type RouteId = ViewId | (typeof PAGES)[number];

export function parseHash(hash: string): RouteId {
  const id = hash.replace(/^#\/?/, '').split(/[/?]/, 1)[0];
  return VIEWS.find((v) => v.id === id)?.id ?? PAGES.find((p) => p === id) ?? 'solve';
}

export class Router {
  view = $state<RouteId>(parseHash(location.hash));

  constructor() {
    // the router lives as long as the page: no listener to remove
    window.addEventListener('hashchange', () => {
      this.view = parseHash(location.hash);
    });
  }

  go(view: RouteId): void {
    if (parseHash(location.hash) !== view || location.hash === '') location.hash = `#/${view}`;
    this.view = view;
  }
}
