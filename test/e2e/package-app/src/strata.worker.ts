// strata.worker.ts — one line, as the README says: the module serves the engine when loaded as a worker
import 'stratadisk/worker';
