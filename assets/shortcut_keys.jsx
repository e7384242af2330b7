// Page-wide keys: "?" opens the keyboard-shortcuts list (it clicks the list's button, `target`),
// "/" puts the cursor in the page's search box (the first visible [data-search-shortcut] field).
// Neither fires while the user types in a field or a dialog has the focus.
import { useEffect } from "react";

function typingInField(event) {
  const el = event.target;
  if (!el || !el.closest) return false;
  return Boolean(el.closest("input, textarea, select, [contenteditable=true], [role=dialog], [role=menu], [role=listbox]"));
}

function visible(el) {
  return Boolean(el && (el.offsetWidth || el.offsetHeight || el.getClientRects().length));
}

export function ShortcutKeys({ target = "shortcuts-button" }) {
  useEffect(() => {
    const onKey = (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || typingInField(event)) return;
      if (event.key === "?") {
        const button = document.getElementById(target);
        if (!button) return;
        event.preventDefault();
        button.click();
      } else if (event.key === "/") {
        const box = Array.from(document.querySelectorAll("[data-search-shortcut]")).find(visible);
        if (!box) return;
        event.preventDefault();
        const field = box.matches("input, textarea") ? box : box.querySelector("input, textarea") || box;
        field.focus();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [target]);
  return null;
}
