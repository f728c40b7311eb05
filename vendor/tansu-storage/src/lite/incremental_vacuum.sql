-- Gives up to 4,096 free pages back to the file system (OpenOrder: after retention).
PRAGMA incremental_vacuum(4096);
