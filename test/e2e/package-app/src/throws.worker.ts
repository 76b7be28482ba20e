// A worker that dies while starting, before it could serve anything.
throw new Error('this worker throws at start');
