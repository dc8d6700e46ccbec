// The CodeMirror 6 pieces the dashboard's Terraform view uses, bundled into
// one IIFE that defines the global `CM` (see README.md). The view itself
// (theme, diagnostics, diffs) lives in ../assets/views.js so it can change
// without a rebuild; keep this list to what views.js uses.
export { EditorState } from "@codemirror/state";
export {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from "@codemirror/view";
export { HighlightStyle, bracketMatching, syntaxHighlighting } from "@codemirror/language";
export { tags } from "@lezer/highlight";
export { lintGutter, lintKeymap, setDiagnostics } from "@codemirror/lint";
export { getChunks, unifiedMergeView } from "@codemirror/merge";
export { hcl } from "codemirror-lang-hcl";
