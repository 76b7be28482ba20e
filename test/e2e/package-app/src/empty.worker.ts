// A worker that runs but never serves the engine: what a bundler that drops
// `import 'stratadisk/worker'` leaves behind (a 0-byte chunk).
export {};
