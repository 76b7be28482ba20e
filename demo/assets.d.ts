/** Vite's `?url` imports (the v86 demo imports v86.wasm's URL this way). */
declare module '*?url' {
  const url: string;
  export default url;
}

/** Vite's `?raw` imports (the v86 demo reads v86's package.json for its version). */
declare module '*?raw' {
  const text: string;
  export default text;
}
