/* Membership decisions: pure functions over the raft configuration. */
#include <corral/cluster.h>

/* Raft roles as dqlite numbers them. */
enum {
	ROLE_VOTER = 0,
	ROLE_STANDBY = 1,
	ROLE_SPARE = 2,
};

int cluster_role_choose(const struct state_raft_node *nodes,
			size_t n,
			uint64_t self,
			unsigned max_voters,
			unsigned max_standby)
{
	unsigned voters = 0;
	unsigned standbys = 0;
	int current = ROLE_SPARE;
	size_t i;

	for (i = 0; i < n; i++) {
		if (nodes[i].id == self) {
			current = nodes[i].role;
			continue;
		}
		if (nodes[i].role == ROLE_VOTER) {
			voters++;
		} else if (nodes[i].role == ROLE_STANDBY) {
			standbys++;
		}
	}
	if (current == ROLE_VOTER || voters < max_voters) {
		return ROLE_VOTER;
	}
	if (current == ROLE_STANDBY || standbys < max_standby) {
		return ROLE_STANDBY;
	}
	return ROLE_SPARE;
}

json_t *cluster_roles_json(int role, bool leader)
{
	if (role == ROLE_VOTER && leader) {
		return json_pack("[s, s]", "database-leader", "database");
	}
	if (role == ROLE_VOTER) {
		return json_pack("[s]", "database");
	}
	if (role == ROLE_STANDBY) {
		return json_pack("[s]", "database-standby");
	}
	return json_array();
}
