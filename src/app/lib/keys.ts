/** Keyboard helpers for the app's single-key shortcuts. */

/** True when a key press belongs to a text field or carries a modifier: shortcuts leave it alone. */
export function typing(e: KeyboardEvent): boolean {
  if (e.ctrlKey || e.metaKey || e.altKey) return true;
  const t = e.target as HTMLElement | null;
  if (!t || typeof t.closest !== 'function') return false;
  return t.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]') !== null;
}
