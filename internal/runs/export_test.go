package runs

// StateLua is the scripts' state list, for tests.
const StateLua = stateLua
