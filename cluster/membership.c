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

int cluster_rebalance_choose(const struct state_raft_node *nodes,
			     const bool *online,
			     size_t n,
			     unsigned max_voters,
			     unsigned max_standby,
			     struct cluster_rebalance *out)
{
	unsigned voters_online = 0;
	unsigned standbys_online = 0;
	size_t standby = n;
	size_t spare = n;
	size_t offline_voter = n;
	size_t i;

	out->id = 0;
	out->role = -1;
	for (i = 0; i < n; i++) {
		if (nodes[i].role == ROLE_VOTER && online[i]) {
			voters_online++;
		} else if (nodes[i].role == ROLE_VOTER) {
			offline_voter = offline_voter < n ? offline_voter : i;
		} else if (nodes[i].role == ROLE_STANDBY && online[i]) {
			standbys_online++;
			standby = standby < n ? standby : i;
		} else if (nodes[i].role == ROLE_SPARE && online[i]) {
			spare = spare < n ? spare : i;
		}
	}
	/* Voters first: an Online stand-by (it has the log), else a spare. */
	if (voters_online < max_voters && (standby < n || spare < n)) {
		i = standby < n ? standby : spare;
		out->id = nodes[i].id;
		out->role = ROLE_VOTER;
		return 1;
	}
	/* Enough voters Online: an Offline one steps down to spare. */
	if (voters_online >= max_voters && offline_voter < n) {
		out->id = nodes[offline_voter].id;
		out->role = ROLE_SPARE;
		return 1;
	}
	/* Then stand-bys, from Online spares. */
	if (standbys_online < max_standby && spare < n) {
		out->id = nodes[spare].id;
		out->role = ROLE_STANDBY;
		return 1;
	}
	return 0;
}
