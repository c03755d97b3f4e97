// happy-dom has no layout: give a scroll element a working scrollTop/scrollTo, as a browser would.
export function fakeScrolling(element: HTMLElement, viewport: number): void {
  let top = 0;
  const max = () => Math.max(0, (element.firstElementChild as HTMLElement | null)?.style.height ? parseFloat((element.firstElementChild as HTMLElement).style.height) - viewport : 0);
  Object.defineProperty(element, 'scrollTop', { get: () => top, set: (v: number) => { top = Math.max(0, Math.min(max(), v)); }, configurable: true });
  Object.defineProperty(element, 'scrollHeight', { get: () => max() + viewport, configurable: true });
  Object.defineProperty(element, 'clientHeight', { get: () => viewport, configurable: true });
  element.scrollTo = ((options: ScrollToOptions) => {
    element.scrollTop = options.top ?? top;
    element.dispatchEvent(new Event('scroll'));
  }) as typeof element.scrollTo;
}
