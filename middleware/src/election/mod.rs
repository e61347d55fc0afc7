//! Leader election (work in progress): the bully algorithm as a sans-IO core.
