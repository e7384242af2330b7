// Leaving a page with unsaved changes asks first. `dirty` is the page's own flag (the editor's
// "Unsaved changes"): closing or reloading the tab gets the browser's own "Leave site?" prompt
// (beforeunload), and a click on a link to another page of the app (client-side navigation, which
// fires no beforeunload) asks `message` and stays unless the user agrees. Renders nothing.
import { useEffect, useRef } from "react";

function leavesPage(anchor) {
  if (!anchor || !anchor.href || anchor.target === "_blank" || anchor.hasAttribute("download")) return false;
  const to = new URL(anchor.href, window.location.href);
  return to.origin !== window.location.origin || to.pathname !== window.location.pathname;
}

export function UnsavedGuard({ dirty = false, message = "You have unsaved changes. Leave without saving?" }) {
  const state = useRef({ dirty, message });
  state.current = { dirty, message };
  useEffect(() => {
    const onBeforeUnload = (event) => {
      if (!state.current.dirty) return;
      event.preventDefault();
      event.returnValue = ""; // what older Chromium needs to show its prompt
    };
    // Capture on window: runs before React's own click handling at the root, so a refusal stops it.
    const onClick = (event) => {
      if (!state.current.dirty || event.defaultPrevented || event.button !== 0) return;
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return; // a new tab or window
      const anchor = event.target && event.target.closest ? event.target.closest("a[href]") : null;
      if (!leavesPage(anchor)) return;
      if (window.confirm(state.current.message)) return;
      event.preventDefault();
      event.stopPropagation();
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    window.addEventListener("click", onClick, true);
    return () => {
      window.removeEventListener("beforeunload", onBeforeUnload);
      window.removeEventListener("click", onClick, true);
    };
  }, []);
  return null;
}
