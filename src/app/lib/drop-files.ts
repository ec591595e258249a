/**
 * `{@attach dropFiles(fn)}`: the element takes files dragged onto it (the file inputs beside it
 * are the keyboard's way in). Marks itself with `data-over` while files hover.
 */
export function dropFiles(onFiles: (files: File[]) => void): (el: HTMLElement) => () => void {
  return (el) => {
    const over = (e: DragEvent) => {
      e.preventDefault();
      el.dataset.over = '';
    };
    const leave = () => delete el.dataset.over;
    const drop = (e: DragEvent) => {
      e.preventDefault();
      leave();
      onFiles([...(e.dataTransfer?.files ?? [])]);
    };
    el.addEventListener('dragover', over);
    el.addEventListener('dragleave', leave);
    el.addEventListener('drop', drop);
    return () => {
      el.removeEventListener('dragover', over);
      el.removeEventListener('dragleave', leave);
      el.removeEventListener('drop', drop);
    };
  };
}
