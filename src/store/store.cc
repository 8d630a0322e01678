#include "store/store.h"

#include <utility>

namespace hafab::store {

Compare Compare::ValueEquals(std::string key, std::string value) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kValue;
  c.op = Op::kEqual;
  c.value = std::move(value);
  return c;
}

Compare Compare::ModRevisionEquals(std::string key, Revision rev) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kModRevision;
  c.op = Op::kEqual;
  c.number = rev;
  return c;
}

Compare Compare::Missing(std::string key) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kCreateRevision;
  c.op = Op::kEqual;
  c.number = 0;
  return c;
}

Compare Compare::Exists(std::string key) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kCreateRevision;
  c.op = Op::kGreater;
  c.number = 0;
  return c;
}

Op Op::Put(std::string key, std::string value, LeaseId lease) {
  Op op;
  op.type = Type::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}

Op Op::Delete(std::string key) {
  Op op;
  op.type = Type::kDelete;
  op.key = std::move(key);
  return op;
}

Op Op::DeletePrefix(std::string prefix) {
  Op op;
  op.type = Type::kDeletePrefix;
  op.key = std::move(prefix);
  return op;
}

Result<Revision> Store::Put(const std::string& key, const std::string& value, LeaseId lease) {
  Txn txn;
  txn.success.push_back(Op::Put(key, value, lease));
  HAFAB_ASSIGN_OR_RETURN(TxnResult result, Commit(txn));
  return result.revision;
}

Result<Revision> Store::Delete(const std::string& key) {
  Txn txn;
  txn.success.push_back(Op::Delete(key));
  HAFAB_ASSIGN_OR_RETURN(TxnResult result, Commit(txn));
  return result.revision;
}

}  // namespace hafab::store
