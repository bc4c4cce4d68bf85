pub mod valkey;
