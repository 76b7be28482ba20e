/** Vite's `?url` imports (the v86 demo imports v86.wasm's URL this way). */
declare module '*?url' {
  const url: string;
  export default url;
}
