/**
 * Display settings that survive a reload: theme (follow the system, light, dark) and talk mode
 * (large type and high contrast for a projector). Applied as `data-theme` (the theme in effect,
 * the system's resolved) and `data-talk` on <html>, which app.css reads.
 */
export type Theme = 'system' | 'light' | 'dark';

const KEY = 'd2g.settings';

interface Saved {
  theme?: Theme;
  talk?: boolean;
}

function read(): Saved {
  try {
    const o: unknown = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    return typeof o === 'object' && o !== null ? (o as Saved) : {};
  } catch {
    return {};
  }
}

export class Settings {
  theme = $state<Theme>('system');
  talk = $state(false);
  private systemDark = $state(false);

  constructor() {
    const mq = matchMedia('(prefers-color-scheme: dark)');
    this.systemDark = mq.matches;
    // lives as long as the page: no listener to remove
    mq.addEventListener('change', (e) => (this.systemDark = e.matches));
    const s = read();
    if (s.theme === 'light' || s.theme === 'dark' || s.theme === 'system') this.theme = s.theme;
    if (typeof s.talk === 'boolean') this.talk = s.talk;
  }

  /** The theme in effect now (system resolved). */
  get effectiveTheme(): 'light' | 'dark' {
    if (this.theme !== 'system') return this.theme;
    return this.systemDark ? 'dark' : 'light';
  }

  /** Light ↔ dark (leaving "system" for the opposite of what the system shows). */
  toggleTheme(): void {
    this.theme = this.effectiveTheme === 'dark' ? 'light' : 'dark';
  }

  toggleTalk(): void {
    this.talk = !this.talk;
  }

  /** Writes the attributes on <html> and saves; call from an $effect. */
  apply(): void {
    const root = document.documentElement;
    root.dataset.theme = this.effectiveTheme;
    if (this.talk) root.dataset.talk = '';
    else delete root.dataset.talk;
    try {
      localStorage.setItem(KEY, JSON.stringify({ theme: this.theme, talk: this.talk }));
    } catch {
      // storage off (private mode): the settings still apply to this page
    }
  }
}
