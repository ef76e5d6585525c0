import { useEffect } from 'preact/hooks';

/**
 * Calls `refresh` every `ms` while the tab is visible: a hidden tab asks the server nothing, and one shown
 * again refreshes at once rather than showing figures as old as the time it was hidden.
 */
export function usePolling(refresh: () => void, ms: number): void {
  useEffect(() => {
    let timer: ReturnType<typeof setInterval> | undefined;
    const start = () => {
      if (timer === undefined) timer = setInterval(refresh, ms);
    };
    const stop = () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    };
    const onVisibility = () => {
      if (document.hidden) return stop();
      refresh();
      start();
    };
    if (!document.hidden) start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      stop();
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [refresh, ms]);
}
