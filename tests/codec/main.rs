//! Envelope decoding in both codecs: round trips, malformed and corrupted
//! input, JSONTestSuite, and the fuzz targets' seeds.

mod binary_robustness;
mod fuzz_seeds;
mod json_test_suite;
mod malformed_envelopes;
mod round_trip;
