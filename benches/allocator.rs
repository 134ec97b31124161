//! Every bench allocates as the service does (src/main.rs): each bench
//! includes this module, so none measures another allocator by accident.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
